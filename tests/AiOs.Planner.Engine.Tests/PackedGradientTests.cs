using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// A unit's backward through one autograd call (<see cref="FlatParameters.Backward"/>, both trainers' layer backward) leaves
/// the gradients that <c>backward</c> and the parameters' <c>grad</c> leave, to the bit, for every way of taking them.
/// </summary>
public sealed class PackedGradientTests
{
    /// <summary>Whether this process runs FlatParameters.Backward through the grad fields (an A/B setting), where a second backward before a take adds instead of refusing.</summary>
    private static bool ThroughFields => Environment.GetEnvironmentVariable("AIOS_LAYER_BACKWARD") == "grad-fields";

    /// <summary>Same shape and every element equal (bitwise for finite values).</summary>
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static FlatParameters Seeded(ParameterLayout layout, ScalarType dtype)
    {
        var p = new FlatParameters(layout, dtype, CPU);
        p.CopyFrom(randn([layout.Elements], generator: new Generator(4)) * 0.1);
        return p;
    }

    [Theory]
    [InlineData("tiny-gpt", ScalarType.Float32)]
    [InlineData("tiny-gpt", ScalarType.BFloat16)]
    [InlineData("tiny-llama", ScalarType.Float32)]
    public void Given_a_decoder_layer_When_back_propagated_by_one_autograd_call_Then_its_gradients_are_the_bits_of_backward_and_grad(string model, ScalarType dtype)
    {
        var spec = ModelCatalog.Default.Load(model);
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), dtype);
        using var layer = new DecoderLayer(spec, p);
        layer.eval();
        using var scope = NewDisposeScope();
        Tensor x = (randn([2, 8, spec.HiddenSize], generator: new Generator(11)) * 0.5).to(dtype);
        Tensor r = randn([2, 8, spec.HiddenSize], generator: new Generator(12)).to(dtype);

        Tensor input1 = x.detach().requires_grad_(true);
        layer.forward(input1).backward([r]);
        Tensor viaFields = p.TakePackedGradients(ScalarType.Float32);

        Tensor input2 = x.detach().requires_grad_(true);
        Tensor inputGradient = p.Backward(layer.forward(input2), input2, r);
        // Held as the fields would hold them: the parameters' grad stays unset (unless AIOS_LAYER_BACKWARD=grad-fields sends
        // Backward through them), and the take reads the held ones.
        if (!ThroughFields) Assert.All(p.Named(), n => Assert.Null(n.Parameter.grad));
        Assert.NotNull(p.Gradient("attn.q.weight"));
        Tensor viaCall = p.TakePackedGradients(ScalarType.Float32);

        Assert.Equal(p.Layout.Elements, viaCall.numel());
        Assert.True(Same(viaCall, viaFields), $"{model}: the packed gradients differ");
        Assert.True(Same(inputGradient, input1.grad!), $"{model}: the input's gradient differs");
        Assert.NotEqual(0.0, viaCall.abs().sum().item<float>());
        Assert.Null(p.Gradient("attn.q.weight"));
        viaFields.Dispose();
        viaCall.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_a_member_used_alone_and_a_leaf_unused_When_back_propagated_by_one_call_Then_the_host_drain_sums_both_and_leaves_the_unused_slice_alone(bool staged)
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), ScalarType.Float32);
        p.StageGradients = staged;
        using var scope = NewDisposeScope();
        Tensor x = randn([2, spec.HiddenSize], generator: new Generator(8));
        // The joint q·k·v view and the k member alone; ln1.bias (and most of the layer) unused.
        Tensor Loss(Tensor input) => F.linear(input, p.Fused("attn.qkv.weight")!).sum() + F.linear(input, p["attn.k.weight"]).sum() + (p["ln1.weight"] * 3).sum();

        Tensor input1 = x.detach().requires_grad_(true);
        Loss(input1).backward();
        var viaFields = Enumerable.Repeat(0.25f, (int)p.Layout.Elements).ToArray();
        p.DrainGradientsInto(viaFields);

        Tensor input2 = x.detach().requires_grad_(true);
        Tensor loss = Loss(input2);
        Tensor inputGradient = p.Backward(loss, input2, ones_like(loss));
        var viaCall = Enumerable.Repeat(0.25f, (int)p.Layout.Elements).ToArray();
        p.DrainGradientsInto(viaCall);

        Assert.Equal(viaFields, viaCall);
        Assert.True(Same(inputGradient, input1.grad!));
        ParameterSlice k = p.Layout.Find("attn.k.weight")!, q = p.Layout.Find("attn.q.weight")!, bias = p.Layout.Find("ln1.bias")!;
        float[] column = x.sum(dim: 0L).data<float>().ToArray();
        for (int j = 0; j < spec.HiddenSize; j++)
        {
            Assert.Equal(0.25f + column[j], viaCall[q.Offset + j], 5);
            Assert.Equal(0.25f + 2 * column[j], viaCall[k.Offset + j], 5);
        }
        Assert.All(viaCall.Skip((int)bias.Offset).Take((int)bias.Elements), g => Assert.Equal(0.25f, g));
    }

    [Fact]
    public void Given_gradients_not_yet_taken_When_back_propagated_again_Then_it_is_refused_until_they_are_cleared()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), ScalarType.Float32);
        using var scope = NewDisposeScope();
        Tensor Run()
        {
            Tensor input = randn([2, spec.HiddenSize], generator: new Generator(5)).requires_grad_(true);
            Tensor loss = F.linear(input, p["attn.o.weight"]).sum();
            return p.Backward(loss, input, ones_like(loss));
        }

        if (ThroughFields) return;
        Run();
        var e = Assert.Throws<InvalidOperationException>(() => Run());
        Assert.Contains("not taken", e.Message);
        p.ClearGradients();
        Assert.Null(p.Gradient("attn.o.weight"));
        Run();
        Assert.NotNull(p.Gradient("attn.o.weight"));
    }
}

/// <summary>The attention's q, k and v views of the joint product: one view, permutation and unbind give the split-and-transpose views' shapes, strides and values.</summary>
public sealed class JointProjectionViewTests
{
    [Fact]
    public void Given_a_joint_qkv_product_When_viewed_by_unbind_Then_each_third_has_the_split_views_shape_strides_and_values()
    {
        const long b = 2, t = 5, heads = 4, d = 8;
        using var scope = NewDisposeScope();
        Tensor joint = randn([b * t, 3 * heads * d], generator: new Generator(3));

        Tensor[] viaUnbind = joint.view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0);
        Tensor[] split = joint.split([heads * d, heads * d, heads * d], -1);

        for (int i = 0; i < 3; i++)
        {
            Tensor expected = split[i].view(b, t, heads, d).transpose(1, 2);
            Assert.Equal(expected.shape, viaUnbind[i].shape);
            Assert.Equal(expected.stride(), viaUnbind[i].stride());
            Assert.True(expected.eq(viaUnbind[i]).all().item<bool>());
        }
    }
}
