using System.Globalization;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>What <c>aios calibrate-cpu</c> does with a fit of a given quality.</summary>
public enum CpuFitVerdict
{
    /// <summary>R² at or above <see cref="CpuFitQuality.WarnBelow"/>: write the profile.</summary>
    Good,
    /// <summary>R² below <see cref="CpuFitQuality.WarnBelow"/>: write it, with a warning.</summary>
    Poor,
    /// <summary>R² below <see cref="CpuFitQuality.RefuseBelow"/>: do not write it unless forced.</summary>
    Unusable,
}

/// <summary>The judgement of a CPU layer fit, with the sentence that explains it; <see cref="Message"/> is null for a good fit.</summary>
public sealed record CpuFitAssessment(CpuFitVerdict Verdict, string? Message)
{
    /// <summary>True when the profile may be written (a fit that is not unusable, or an unusable one with --force).</summary>
    public bool Write { get; init; }
}

/// <summary>
/// How far a CPU layer fit can be trusted. On this project's quiet 2-core VM the fit explained the timed passes with
/// R² 0.984 (docs/engine.md); a machine busy with other work stalls some passes at random and the fit drops (0.39 was
/// seen while other builds ran), so its constants describe the load, not the CPU. A fit with no R² (NaN) is unusable.
/// </summary>
public static class CpuFitQuality
{
    /// <summary>R² below which the written profile comes with a warning.</summary>
    public const double WarnBelow = 0.9;

    /// <summary>R² below which the profile is not written unless forced: the fit explains less than half the variation.</summary>
    public const double RefuseBelow = 0.5;

    /// <summary>Judges <paramref name="fit"/>; <paramref name="force"/> writes even an unusable fit (saying so).</summary>
    public static CpuFitAssessment Assess(CpuLayerFitResult fit, bool force)
    {
        ArgumentNullException.ThrowIfNull(fit);
        string quality = string.Create(CultureInfo.InvariantCulture, $"R² {fit.RSquared:0.000}, RMS error {fit.RmsRelativeError:0.0%}");
        if (fit.RSquared >= WarnBelow) return new CpuFitAssessment(CpuFitVerdict.Good, null) { Write = true };
        if (fit.RSquared >= RefuseBelow)
            return new CpuFitAssessment(CpuFitVerdict.Poor, string.Create(CultureInfo.InvariantCulture,
                $"the layer fit is poor ({quality}; below {WarnBelow} the timings disagree with the model): the machine was likely busy. The profile was written; rerun aios calibrate-cpu on a quiet machine to trust it."))
                { Write = true };
        string unusable = string.Create(CultureInfo.InvariantCulture,
            $"the layer fit is unusable ({quality}; below {RefuseBelow} it explains less than half of the timings' variation), so its constants describe whatever else the machine was doing");
        return force
            ? new CpuFitAssessment(CpuFitVerdict.Unusable, unusable + ". Written anyway because of --force.") { Write = true }
            : new CpuFitAssessment(CpuFitVerdict.Unusable, unusable + ". The profile was NOT written; rerun on a quiet machine, or pass --force to write it anyway.") { Write = false };
    }
}
