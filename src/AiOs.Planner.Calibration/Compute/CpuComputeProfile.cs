using System.Globalization;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>What <c>aios calibrate-cpu</c> measured, in the terms the profile keeps.</summary>
/// <param name="Fp32Gflops">Best median fp32 rate of the layer-shaped matmul benchmark.</param>
/// <param name="Bf16Gflops">As <paramref name="Fp32Gflops"/> in bf16; null when not measured.</param>
/// <param name="Threads">Threads TorchSharp computed with (the engine uses the same).</param>
/// <param name="Fit">The layer-cost fit.</param>
/// <param name="Samples">Timed passes behind the fit.</param>
/// <param name="Family">The model whose layer kind was timed.</param>
public sealed record CpuComputeCalibration(double Fp32Gflops, double? Bf16Gflops, int Threads, CpuLayerFitResult Fit, int Samples, string Family)
{
    /// <summary>Dense vocabulary-gradient rate of the family's embedding backward, GB/s; null when not timed.</summary>
    public double? VocabGradientGbps { get; init; }
}

/// <summary>Writes a CPU compute calibration into a profile's CPU section, keeping every other figure.</summary>
public static class CpuComputeProfile
{
    /// <summary>The profile with measured matmul rates and layer compute; nothing else changes.</summary>
    public static HardwareProfile Apply(HardwareProfile profile, CpuComputeCalibration c, string date)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(c);
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        Figure F(double value, string method) => Figure.Measured(Math.Round(value, 4), date, method);
        string matmul = I($"TorchSharp CPU matmul (512 × h)·(h × 4h), h = 768/1024/2048, median of repeats, best shape, {c.Threads} threads");
        string fit = I($"aios calibrate-cpu: {c.Samples} timed forward/recompute/backward passes of {c.Family}-kind decoder layers (h 256–1024, 1×128/4×128/1×256 tokens) and its head, fitted by non-negative least squares on relative error (R² {c.Fit.RSquared:0.000}, RMS error {c.Fit.RmsRelativeError:0.0%}, terms: {string.Join(", ", c.Fit.Terms)}), {c.Threads} threads");
        var cpu = profile.Cpu with
        {
            MatmulGflops = F(c.Fp32Gflops, matmul),
            MatmulGflopsBf16 = c.Bf16Gflops is { } b ? F(b, matmul) : profile.Cpu.MatmulGflopsBf16,
            LayerCompute = new CpuLayerCompute
            {
                MatmulEfficiency = F(c.Fit.MatmulEfficiency, fit),
                SavedBytesGbps = F(c.Fit.SavedBytesRate.GBps, fit),
                LayerOverheadUs = F(c.Fit.Overhead.Seconds * 1e6, fit),
                BackwardRatio = F(c.Fit.BackwardRatio, fit),
                VocabGradientGbps = c.VocabGradientGbps is { } v
                    ? F(v, I($"aios calibrate-cpu: {c.Family}'s vocabulary × hidden fp32 gradient bytes over its timed embedding backward (after the head's backward, as in a step), median of repeats, {c.Threads} threads"))
                    : profile.Cpu.LayerCompute?.VocabGradientGbps,
            },
        };
        return profile with { Cpu = cpu };
    }
}
