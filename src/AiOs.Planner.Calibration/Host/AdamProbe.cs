using System.Diagnostics;
using AiOs.Planner.IO;
using AiOs.Planner.Optim;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Host;

/// <summary>Parameters per second that the engine's <see cref="CpuAdam"/> updates (fp32 master weights, m and v, fp32 gradients).</summary>
public static unsafe class AdamProbe
{
    /// <summary>Steps <paramref name="parameters"/> parameters for about <paramref name="duration"/> on <paramref name="threads"/> threads; returns parameters per second.</summary>
    public static double Measure(long parameters, int threads, TimeSpan duration, CancellationToken ct)
    {
        var bytes = new Bytes(parameters * sizeof(float)).AlignUp(AlignedBuffer.Alignment);
        using var p = new AlignedBuffer(bytes);
        using var g = new AlignedBuffer(bytes);
        using var m = new AlignedBuffer(bytes);
        using var v = new AlignedBuffer(bytes);
        var rng = new Random(1);
        foreach (var b in new[] { p, g })
        {
            var f = b.AsFloats();
            for (int i = 0; i < f.Length; i++) f[i] = (float)(rng.NextDouble() - 0.5);
        }
        m.AsSpan().Clear();
        v.AsSpan().Clear();
        var hp = new AdamHyperParameters();
        int step = 1;
        void Once() => CpuAdam.Step((float*)p.Address, (float*)g.Address, (float*)m.Address, (float*)v.Address, parameters, step++, hp, threads);
        Once(); // warm-up: page faults and JIT
        long updated = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration || updated == 0)
        {
            ct.ThrowIfCancellationRequested();
            Once();
            updated += parameters;
        }
        return updated / sw.Elapsed.TotalSeconds;
    }
}
