using System.Globalization;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>
/// Turns an eager fit into a profile's <c>gpu.eager_compute</c> section (what <c>aios fit-eager --write-profile</c>
/// writes): each fitted constant measured on the fit's date, its method naming the baselines file, the split and the
/// fit's errors on fit and test rows, so the profile says how well the constants did on rows they never saw.
/// </summary>
public static class EagerComputeSection
{
    /// <summary>The section of <paramref name="result"/>, fitted from <paramref name="baselines"/> (the path as given) on <paramref name="date"/>.</summary>
    public static EagerCompute Of(EagerFitResult result, string baselines, string date)
    {
        ArgumentNullException.ThrowIfNull(result);
        var (fit, test) = (result.Fit, result.Test);
        string method = string.Create(CultureInfo.InvariantCulture,
            $"aios fit-eager --baselines {baselines} ({result.Split.Describe()}): PyTorch eager steps, fit {fit.Count} rows median |error| {fit.MedianAbs:0.0%} max {fit.MaxAbs:0.0%}; test {test.Count} rows (not fitted) median {test.MedianAbs:0.0%} max {test.MaxAbs:0.0%}");
        var m = result.Fitted;
        Figure F(double value) => Figure.Measured(Math.Round(value, 4), date, method);
        return new EagerCompute
        {
            MatmulHalfRateHidden = F(m.MatmulHalfRateHidden),
            ElementwiseTraffic = F(m.ElementwiseTraffic),
            LayerOverheadUs = F(m.LayerOverhead.Nanoseconds / 1e3),
            LayerLaunchFloorUs = F(m.LayerLaunchFloor.Nanoseconds / 1e3),
            RecomputeLaunchFloors = F(m.RecomputeLaunchFloors),
        };
    }

    /// <summary><paramref name="profile"/> with <paramref name="section"/> as its GPU's eager compute; every other figure kept.</summary>
    /// <exception cref="CalibrationException">The profile has no GPU section.</exception>
    public static HardwareProfile Apply(HardwareProfile profile, EagerCompute section)
    {
        ArgumentNullException.ThrowIfNull(profile);
        if (profile.Gpu is null)
            throw new CalibrationException($"{profile.Name} has no GPU section to hold gpu.eager_compute; give --hardware the GPU profile the baselines ran on.");
        return profile with { Gpu = profile.Gpu with { EagerCompute = section } };
    }

    /// <summary>Validates <paramref name="profile"/> and writes it to <paramref name="path"/> atomically (the old file, if any, stays whole until the new one is).</summary>
    public static void WriteProfile(string path, HardwareProfile profile) =>
        ProfileWriter.WriteFile(path, profile.Validated(path));
}
