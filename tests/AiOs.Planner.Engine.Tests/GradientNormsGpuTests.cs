using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// On a GPU (AIOS_GPU=1), the fp32 norms the resident trainer takes there (CUDA's reduction kernels, which accumulate
/// differently from the CPU's) agree with the fp64 copies, across a chunk boundary of the default chunk, and keep inf/NaN.
/// </summary>
[Trait("Category", "Gpu")]
public sealed class GradientNormsGpuTests
{
    public GradientNormsGpuTests() => TorchRuntime.EnsureReady(TorchRuntime.DeviceTypeOf("cuda"));

    [GpuTheory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.Float32)]
    public void Given_cuda_gradients_up_to_past_a_chunk_When_the_fp32_path_sums_squares_Then_it_agrees_with_the_fp64_copies_to_1e_5(ScalarType type)
    {
        long[] sizes = [1, 1001, 300_007, GradientNorms.ChunkElements + 4099];
        Tensor[] g = [.. sizes.Select((n, i) => (randn([n], generator: new Generator(17UL + (ulong)i)) * Math.Pow(10, -i)).to(type, CUDA))];

        double[] exact = GradientNorms.Fp64(g), fast = GradientNorms.Fp32(g);

        for (int u = 0; u < sizes.Length; u++)
            Assert.True(Math.Abs(fast[u] - exact[u]) <= 1e-5 * exact[u], $"unit {u} ({sizes[u]} {type}): {fast[u]} vs {exact[u]}");
    }

    [GpuTheory]
    [InlineData(ScalarType.BFloat16, double.PositiveInfinity)]
    [InlineData(ScalarType.BFloat16, double.NaN)]
    [InlineData(ScalarType.Float16, double.PositiveInfinity)]
    [InlineData(ScalarType.Float32, double.NaN)]
    public void Given_a_cuda_gradient_with_inf_or_nan_When_the_fp32_path_sums_squares_Then_it_is_inf_or_nan(ScalarType type, double bad)
    {
        Tensor[] g = GradientNormsTests.Gradients(type, [5000, 5000], seed: 4, CUDA);
        g[0][4321] = tensor(bad).to(type, CUDA);

        double[] sums = GradientNorms.Fp32(g);

        Assert.True(double.IsFinite(sums[1]));
        if (double.IsNaN(bad)) Assert.True(double.IsNaN(sums[0]), $"{sums[0]}");
        else Assert.Equal(double.PositiveInfinity, sums[0]);
    }
}
