using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class SpanAdamWTests
{
    public SpanAdamWTests() => TorchRuntime.EnsureReady();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_RandomGradients_When_EitherCpuAdamRunsFiveSteps_Then_ItMatchesTorchOptimAdamW(bool cpuAdam)
    {
        const int n = 1000;
        var rng = new SplitMix64(5);
        float[] start = Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();
        float[][] grads = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * 0.1)).ToArray()).ToArray();
        var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1, Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-8 };

        float[] master = (float[])start.Clone(), m = new float[n], v = new float[n];
        IOptimizerStep adam = cpuAdam ? new CpuAdamStep(options, threads: 2) : new SpanAdamW(options);
        for (int s = 0; s < grads.Length; s++) adam.Update(master, grads[s], m, v, s + 1, 1f);

        using var p = new TorchSharp.Modules.Parameter(tensor(start), requires_grad: true);
        using var opt = optim.AdamW([p], lr: options.LearningRate, beta1: options.Beta1, beta2: options.Beta2, eps: options.Epsilon, weight_decay: options.WeightDecay);
        foreach (float[] g in grads)
        {
            p.grad = tensor(g);
            opt.step();
        }
        float[] expected = p.data<float>().ToArray();

        for (int i = 0; i < n; i++) Assert.Equal(expected[i], master[i], 5e-6f);
        Assert.NotEqual(start[0], master[0]);
    }

    [Fact]
    public void Given_ALongOddLengthSpan_When_Updated_Then_TheVectorisedParallelPathEqualsAScalarLoopExactly()
    {
        const int n = 200_003; // several parallel chunks and a scalar tail
        var rng = new SplitMix64(11);
        float[] p = Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();
        float[] g = Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * 0.01)).ToArray();
        float[] m = Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * 0.001)).ToArray();
        float[] v = Enumerable.Range(0, n).Select(_ => (float)Math.Abs(rng.NextGaussian() * 1e-5)).ToArray();
        float[] sp = (float[])p.Clone(), sm = (float[])m.Clone(), sv = (float[])v.Clone();
        var o = new AdamWOptions { LearningRate = 3e-4, WeightDecay = 0.1 };

        new SpanAdamW(o).Update(p, g, m, v, 7, 0.5f);

        float decay = 1f - (float)(o.LearningRate * o.WeightDecay), b2 = (float)o.Beta2, eps = (float)o.Epsilon;
        float stepSize = (float)(o.LearningRate / (1 - Math.Pow(o.Beta1, 7))), bc2Sqrt = (float)Math.Sqrt(1 - Math.Pow(o.Beta2, 7));
        for (int i = 0; i < n; i++)
        {
            float gi = g[i] * 0.5f;
            float mi = sm[i] + (gi - sm[i]) * (1f - (float)o.Beta1);
            float vi = sv[i] * b2 + (1f - b2) * gi * gi;
            sp[i] = sp[i] * decay - stepSize * (mi / (MathF.Sqrt(vi) / bc2Sqrt + eps));
            sm[i] = mi;
            sv[i] = vi;
        }
        Assert.Equal(sp, p);
        Assert.Equal(sm, m);
        Assert.Equal(sv, v);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_AGradScale_When_Updated_Then_ItEqualsAnUpdateWithPrescaledGradients(bool cpuAdam)
    {
        IOptimizerStep adam = cpuAdam ? new CpuAdamStep(new AdamWOptions()) : new SpanAdamW(new AdamWOptions());
        float[] g = [0.5f, -2f, 3f];
        float[] a = [1f, 2f, 3f], am = new float[3], av = new float[3];
        float[] b = [1f, 2f, 3f], bm = new float[3], bv = new float[3];

        adam.Update(a, g, am, av, 1, 0.25f);
        adam.Update(b, g.Select(x => x * 0.25f).ToArray(), bm, bv, 1, 1f);

        Assert.Equal(b, a);
        Assert.Equal(bm, am);
    }

    [Fact]
    public void Given_StepZero_When_Updated_Then_ItIsRefused()
    {
        var adam = new SpanAdamW(new AdamWOptions());

        Assert.Throws<ArgumentOutOfRangeException>(() => adam.Update(new float[1], new float[1], new float[1], new float[1], 0, 1f));
    }
}
