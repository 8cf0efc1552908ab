using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class FlatParametersTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt");

    private static void SetGradients(FlatParameters p, ScalarType dtype)
    {
        var rng = new SplitMix64(3);
        foreach (var (name, parameter) in p.Named())
        {
            if (name == "ln1.bias") continue; // one parameter without a gradient
            float[] values = Enumerable.Range(0, (int)parameter.numel()).Select(_ => (float)rng.NextGaussian()).ToArray();
            parameter.grad = tensor(values).reshape(parameter.shape).to(dtype);
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Given_Gradients_When_DrainedThroughThePackedHostPath_Then_TheAccumulatorEqualsTheInPlacePath(ScalarType dtype)
    {
        using var p = new FlatParameters(ParameterLayout.ForLayer(Spec), dtype, CPU);
        var direct = Enumerable.Repeat(0.5f, (int)p.Layout.Elements).ToArray();
        var staged = (float[])direct.Clone();

        SetGradients(p, dtype);
        p.DrainGradientsInto(direct);
        SetGradients(p, dtype);
        p.StageGradients = true;
        p.DrainGradientsInto(staged);

        Assert.Equal(direct, staged);
        ParameterSlice noGrad = p.Layout.Find("ln1.bias")!;
        Assert.Equal(0.5f, staged[noGrad.Offset]);
        Assert.NotEqual(0.5f, staged[0]);
        Assert.All(p.Named(), x => Assert.Null(x.Parameter.grad));
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, true)]
    public void Given_AStaleAccumulator_When_DrainedWithOverwrite_Then_ItHoldsExactlyTheGradients(ScalarType dtype, bool staged)
    {
        using var p = new FlatParameters(ParameterLayout.ForLayer(Spec), dtype, CPU) { StageGradients = staged };
        var added = new float[p.Layout.Elements];
        var overwritten = Enumerable.Repeat(7f, (int)p.Layout.Elements).ToArray();

        SetGradients(p, dtype);
        p.DrainGradientsInto(added);
        SetGradients(p, dtype);
        p.DrainGradientsInto(overwritten, overwrite: true);

        Assert.Equal(added, overwritten);
        Assert.Equal(0f, overwritten[p.Layout.Find("ln1.bias")!.Offset]);
    }
}
