using System.Globalization;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>One precision's timed layers, fitted: the terms of a <see cref="CpuLayerCompute"/>.</summary>
/// <param name="Fit">The layer-cost fit.</param>
/// <param name="Samples">Timed passes behind the fit.</param>
/// <param name="VocabGradientGbps">Dense vocabulary-gradient rate of the family's embedding backward, GB/s; null when not timed.</param>
public sealed record CpuLayerCalibration(CpuLayerFitResult Fit, int Samples, double? VocabGradientGbps = null);

/// <summary>What <c>aios calibrate-cpu</c> measured, in the terms the profile keeps.</summary>
/// <param name="Fp32Gflops">Best median fp32 rate of the layer-shaped matmul benchmark.</param>
/// <param name="Bf16Gflops">As <paramref name="Fp32Gflops"/> in bf16; null when not measured.</param>
/// <param name="Threads">Threads TorchSharp computed with (the engine uses the same).</param>
/// <param name="Fp32Layers">The layers timed in fp32 (<c>cpu.layer_compute</c>).</param>
/// <param name="Family">The model whose layer kind was timed.</param>
public sealed record CpuComputeCalibration(double Fp32Gflops, double? Bf16Gflops, int Threads, CpuLayerCalibration Fp32Layers, string Family)
{
    /// <summary>The layers timed in bf16, fitted against the bf16 matmul rate (<c>cpu.layer_compute_bf16</c>); null: not timed, or a fit not to write.</summary>
    public CpuLayerCalibration? Bf16Layers { get; init; }
}

/// <summary>Writes a CPU compute calibration into a profile's CPU section, keeping every other figure.</summary>
public static class CpuComputeProfile
{
    /// <summary>
    /// The profile with measured matmul rates and layer compute; nothing else changes. Without a bf16 rate the profile's bf16 rate
    /// and fit stay; a bf16 rate without a bf16 fit (its fit refused) removes the profile's bf16 fit, made against another rate.
    /// </summary>
    public static HardwareProfile Apply(HardwareProfile profile, CpuComputeCalibration c, string date)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(c);
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        Figure F(double value, string method) => Figure.Measured(Math.Round(value, 4), date, method);
        string matmul = I($"TorchSharp CPU matmul (512 × h)·(h × 4h), h = 768/1024/2048, median of repeats, best shape, {c.Threads} threads");
        CpuLayerCompute Layers(CpuLayerCalibration l, string precision, Figure? keptVocab)
        {
            string fit = I($"aios calibrate-cpu: {l.Samples} timed {precision} forward/recompute/backward passes of {c.Family}-kind decoder layers (h 64–1024, 1×128/4×128/1×256 tokens) and its head, fitted against the {precision} matmul rate by non-negative least squares on relative error (R² {l.Fit.RSquared:0.000}, RMS error {l.Fit.RmsRelativeError:0.0%}, terms: {string.Join(", ", l.Fit.Terms)}), {c.Threads} threads");
            return new CpuLayerCompute
            {
                MatmulEfficiency = F(l.Fit.MatmulEfficiency, fit),
                SavedBytesGbps = F(l.Fit.SavedBytesRate.GBps, fit),
                LayerOverheadUs = F(l.Fit.Overhead.Seconds * 1e6, fit),
                BackwardRatio = F(l.Fit.BackwardRatio, fit),
                VocabGradientGbps = l.VocabGradientGbps is { } v
                    ? F(v, I($"aios calibrate-cpu: {c.Family}'s vocabulary × hidden {precision} gradient bytes over its timed embedding backward (after the head's backward, as in a step), median of repeats, {c.Threads} threads"))
                    : keptVocab,
            };
        }
        var cpu = profile.Cpu with
        {
            MatmulGflops = F(c.Fp32Gflops, matmul),
            MatmulGflopsBf16 = c.Bf16Gflops is { } b ? F(b, matmul) : profile.Cpu.MatmulGflopsBf16,
            LayerCompute = Layers(c.Fp32Layers, "fp32", profile.Cpu.LayerCompute?.VocabGradientGbps),
            // A bf16 fit belongs with the bf16 matmul rate it was fitted against: a new rate without a new fit drops the old fit.
            LayerComputeBf16 = c.Bf16Layers is { } bf16 ? Layers(bf16, "bf16", profile.Cpu.LayerComputeBf16?.VocabGradientGbps)
                : c.Bf16Gflops is null ? profile.Cpu.LayerComputeBf16 : null,
        };
        return profile with { Cpu = cpu };
    }
}
