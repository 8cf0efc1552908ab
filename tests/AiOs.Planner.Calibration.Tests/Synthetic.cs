using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>A drive that follows the fitted model exactly, for sweep and fit tests without a disk.</summary>
internal static class Synthetic
{
    public static double Rate(double peak, double halfInflightKib, double halfBlockKib, AioSettings s)
    {
        double x = s.InFlight.Value / 1024.0, b = s.BlockSize.Value / 1024.0;
        return peak * x / (x + halfInflightKib) * b / (b + halfBlockKib);
    }

    public static List<DriveSample> Samples(double peak, double h, double c, double noise = 0, int seed = 1)
    {
        var rng = new Random(seed);
        var list = new List<DriveSample>();
        foreach (int kib in new[] { 128, 256, 512, 1024, 2048, 4096 })
            foreach (int qd in new[] { 1, 4, 16 })
                foreach (int t in new[] { 1, 2 })
                {
                    var s = new AioSettings { BlockSize = Bytes.FromKiB(kib), QueueDepth = qd, IntraOpParallelism = t };
                    double r = Rate(peak, h, c, s) * (1 + noise * (rng.NextDouble() * 2 - 1));
                    list.Add(new DriveSample(s.BlockSize.Value, qd, t, r));
                }
        return list;
    }
}
