using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The resident trainer's Σg² on a GPU (fp32 norms, chunked for bf16/fp16) agrees with the exact fp64 copies, keeps
/// non-finite gradients non-finite, does not overflow spuriously, and AIOS_GRAD_NORM picks the path. Run on CPU tensors.
/// </summary>
public sealed class GradientNormsTests
{
    public GradientNormsTests() => TorchRuntime.EnsureReady();

    private static readonly long[] Sizes = [1, 999, 1023, 1024, 1025, 12_345, 300_007];

    /// <summary>Random gradients of <paramref name="sizes"/>, values spread over six decades and both signs.</summary>
    internal static Tensor[] Gradients(ScalarType type, long[] sizes, int seed, Device? device = null)
    {
        var r = new Random(seed);
        return [.. sizes.Select(n => tensor(Enumerable.Range(0, (int)n)
            .Select(i => (float)((r.NextDouble() - 0.5) * Math.Pow(10, -(i % 6)))).ToArray()).to(type, device ?? CPU))];
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, GradientNorms.ChunkElements)]
    [InlineData(ScalarType.BFloat16, 1000L)]
    [InlineData(ScalarType.Float16, 1000L)]
    [InlineData(ScalarType.Float32, GradientNorms.ChunkElements)]
    [InlineData(ScalarType.Float32, 7L)]
    public void Given_random_gradients_of_several_sizes_When_the_fp32_path_sums_their_squares_Then_it_agrees_with_the_fp64_copies_to_1e_5(
        ScalarType type, long chunk)
    {
        Tensor[] g = Gradients(type, Sizes, seed: 5);

        double[] exact = GradientNorms.Fp64(g), fast = GradientNorms.Fp32(g, chunk);

        Assert.Equal(Sizes.Length, fast.Length);
        for (int u = 0; u < Sizes.Length; u++)
        {
            Assert.True(exact[u] > 0);
            Assert.True(Math.Abs(fast[u] - exact[u]) <= 1e-5 * exact[u], $"unit {u} ({Sizes[u]} {type}): {fast[u]} vs {exact[u]}");
        }
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, double.PositiveInfinity)]
    [InlineData(ScalarType.BFloat16, double.NegativeInfinity)]
    [InlineData(ScalarType.BFloat16, double.NaN)]
    [InlineData(ScalarType.Float16, double.PositiveInfinity)]
    [InlineData(ScalarType.Float16, double.NaN)]
    [InlineData(ScalarType.Float32, double.NegativeInfinity)]
    [InlineData(ScalarType.Float32, double.NaN)]
    public void Given_one_unit_with_an_inf_or_nan_gradient_When_the_fp32_path_sums_squares_Then_that_unit_alone_is_inf_or_nan(
        ScalarType type, double bad)
    {
        Tensor[] g = Gradients(type, [2000, 2000, 2000], seed: 9);
        g[1][1500] = tensor(bad).to(type);

        double[] sums = GradientNorms.Fp32(g, chunkElements: 1000);

        Assert.True(double.IsFinite(sums[0]) && double.IsFinite(sums[2]));
        if (double.IsNaN(bad)) Assert.True(double.IsNaN(sums[1]), $"{sums[1]}");
        else Assert.Equal(double.PositiveInfinity, sums[1]);
        Assert.True(LossScaler.Overflowed(sums.Sum()));
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.Float32)]
    public void Given_a_gradient_with_both_inf_and_nan_When_the_fp32_path_sums_squares_Then_it_is_nan(ScalarType type)
    {
        Tensor[] g = Gradients(type, [3000], seed: 2);
        g[0][10] = tensor(double.PositiveInfinity).to(type);
        g[0][2500] = tensor(double.NaN).to(type);

        Assert.True(double.IsNaN(GradientNorms.Fp32(g, chunkElements: 1000)[0]));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Given_finite_gradients_whose_squares_overflow_fp32_When_the_fp32_path_sums_them_Then_the_sum_is_finite_and_exact(ScalarType type)
    {
        // 3e19² = 9e38 > fp32's 3.4e38: an fp32 accumulation of these squares is +inf though every value is finite.
        Tensor[] g = [full([4000], 3e19, type), Gradients(type, [100], seed: 3)[0]];

        double[] exact = GradientNorms.Fp64(g), fast = GradientNorms.Fp32(g);

        Assert.True(double.IsFinite(fast[0]), $"{fast[0]}");
        Assert.Equal(exact[0], fast[0], 1e-5 * exact[0]);
        Assert.Equal(exact[1], fast[1], 1e-5 * exact[1]);
    }

    [Fact]
    public void Given_an_empty_gradient_When_either_path_sums_squares_Then_it_is_zero()
    {
        Tensor[] g = [zeros([0], ScalarType.BFloat16), zeros([0], ScalarType.Float32), ones([3], ScalarType.BFloat16)];

        Assert.Equal([0, 0, 3], GradientNorms.Fp64(g));
        Assert.Equal([0, 0, 3], GradientNorms.Fp32(g, chunkElements: 2), new ToleranceComparer(1e-6));
    }

    [Theory]
    [InlineData(DeviceType.CPU, null, GradientNormPath.Fp64Copy)]
    [InlineData(DeviceType.CPU, "", GradientNormPath.Fp64Copy)]
    [InlineData(DeviceType.CUDA, null, GradientNormPath.Fp32Reduction)]
    [InlineData(DeviceType.CUDA, "", GradientNormPath.Fp32Reduction)]
    [InlineData(DeviceType.CUDA, "fp64", GradientNormPath.Fp64Copy)]
    [InlineData(DeviceType.CUDA, " FP64 ", GradientNormPath.Fp64Copy)]
    [InlineData(DeviceType.CUDA, "fp32", GradientNormPath.Fp32Reduction)]
    [InlineData(DeviceType.CPU, "fp32", GradientNormPath.Fp32Reduction)]
    public void Given_a_device_and_AIOS_GRAD_NORM_When_the_path_is_chosen_Then_the_cpu_stays_exact_and_fp64_restores_the_copies(
        DeviceType device, string? request, GradientNormPath expected) =>
        Assert.Equal(expected, GradientNorms.PathFor(device, request));

    [Theory]
    [InlineData("fp16")]
    [InlineData("1")]
    public void Given_an_unknown_AIOS_GRAD_NORM_When_the_path_is_chosen_Then_the_error_names_the_variable_and_its_values(string request)
    {
        var e = Assert.Throws<ArgumentException>(() => GradientNorms.PathFor(DeviceType.CUDA, request));

        Assert.Contains($"AIOS_GRAD_NORM={request}", e.Message);
        Assert.Contains("fp64", e.Message);
        Assert.Contains("fp32", e.Message);
    }

    [Theory]
    [InlineData(GradientNormPath.Fp64Copy)]
    [InlineData(GradientNormPath.Fp32Reduction)]
    public void Given_a_path_When_sums_of_squares_are_taken_through_it_Then_they_are_that_path_s_results(GradientNormPath path)
    {
        Tensor[] g = Gradients(ScalarType.BFloat16, [5000], seed: 8);

        double[] expected = path == GradientNormPath.Fp64Copy ? GradientNorms.Fp64(g) : GradientNorms.Fp32(g);

        Assert.Equal(expected, GradientNorms.SumsOfSquares(g, path));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Given_cpu_gradients_When_the_fp64_path_sums_squares_Then_it_reads_them_in_place_as_the_layerwise_trainer_does(ScalarType type)
    {
        Tensor[] g = Gradients(type, Sizes, seed: 12);
        // A strided view is not read in place: it goes through the fp64 copy and still agrees.
        Tensor strided = Gradients(type, [4000], seed: 13)[0].view(2000, 2).select(1, 0);

        double[] sums = GradientNorms.Fp64([.. g, strided]);

        for (int u = 0; u < Sizes.Length; u++)
        {
            // SumOfSquaresBf16 is exactly SumOfSquares of the widened values (SpanMath's contract, tested there).
            double inPlace = Optim.SpanMath.SumOfSquares(g[u].to(ScalarType.Float32).data<float>().ToArray());
            Assert.Equal(inPlace, sums[u]);
            double copied = g[u].to(ScalarType.Float64).square().sum().item<double>();
            Assert.True(Math.Abs(sums[u] - copied) <= 1e-12 * copied, $"unit {u}: {sums[u]} vs {copied}");
        }
        double stridedCopy = strided.to(ScalarType.Float64).square().sum().item<double>();
        Assert.True(Math.Abs(sums[^1] - stridedCopy) <= 1e-12 * stridedCopy);
    }

    [Fact]
    public void Given_a_cpu_fp16_gradient_with_an_infinity_When_the_fp64_path_sums_squares_Then_it_falls_back_to_the_copy_and_is_inf()
    {
        Tensor[] g = Gradients(ScalarType.Float16, [3000, 100], seed: 4);
        g[0][7] = tensor(double.PositiveInfinity).to(ScalarType.Float16);

        double[] sums = GradientNorms.Fp64(g);

        Assert.Equal(double.PositiveInfinity, sums[0]);
        Assert.Equal(g[1].to(ScalarType.Float64).square().sum().item<double>(), sums[1]);
    }

    private sealed class ToleranceComparer(double relative) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= relative * Math.Max(Math.Abs(a), Math.Abs(b));

        public int GetHashCode(double value) => 0;
    }
}
