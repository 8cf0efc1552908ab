using System.Diagnostics;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Calibration.Host;

/// <summary>
/// Times one CPU Adam call at each of several sizes and fits <c>t = a + b·n</c> (<see cref="CallCostFit"/>): the fixed cost
/// every update call pays (the threads' start and finish, per-call set-up) apart from the cost per parameter. The engine
/// makes one call per sub-group, so a model of many small units (gpt2: 14 units of ≤ 40 M) pays <c>a</c> many times per step,
/// which a rate measured on one large call does not show (issue 13).
/// </summary>
public static class AdamCallProbe
{
    /// <summary>The sizes calibration times: 16 K to 16 M parameters, every factor of 4 (the engine's sub-groups and units span this).</summary>
    public static IReadOnlyList<long> CalibrationSizes { get; } = [16L << 10, 64L << 10, 256L << 10, 1L << 20, 4L << 20, 16L << 20];

    /// <summary>
    /// The median wall time of one <paramref name="kernel"/> call at each of <paramref name="sizes"/>, on <paramref name="threads"/>
    /// threads, each size timed for about <paramref name="durationPerSize"/> (at least <paramref name="minCalls"/> calls). The calls walk
    /// through a state of <paramref name="stateParameters"/> (at least the largest size; far above the caches, as a training
    /// step's state is), so a small call reads memory an earlier call did not leave in the caches.
    /// </summary>
    public static IReadOnlyList<CallTiming> Measure(AdamProbeKernel kernel, IReadOnlyList<long> sizes, long stateParameters, int threads,
        TimeSpan durationPerSize, CancellationToken ct, int minCalls = 5)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        if (sizes.Count == 0 || sizes.Any(s => s < 1 || s > int.MaxValue))
            throw new ArgumentException("Each size must be between 1 and 2^31 − 1 parameters.", nameof(sizes));
        long state = Math.Max(stateParameters, sizes.Max());
        using var probe = new AdamProbe.ProbeState(kernel, state);
        var hp = new AdamHyperParameters();
        var timings = new List<CallTiming>(sizes.Count);
        int step = 1;
        foreach (long size in sizes)
        {
            int n = (int)size;
            long offset = 0;
            long Next()
            {
                long at = offset;
                offset = offset + 2 * n > state ? 0 : offset + n;
                return at;
            }
            // Warm-up: the first touch of the pages and the kernels' compilation stay out of the timings.
            for (int i = 0; i < 2; i++) probe.Step(Next(), n, step++, hp, threads);
            var times = new List<double>();
            var total = Stopwatch.StartNew();
            while (times.Count < minCalls || total.Elapsed < durationPerSize)
            {
                ct.ThrowIfCancellationRequested();
                long at = Next();
                long t0 = Stopwatch.GetTimestamp();
                probe.Step(at, n, step, hp, threads);
                times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
                // The step number only moves the bias corrections; kept small so they stay away from 1.
                step = step % 1000 + 1;
            }
            times.Sort();
            timings.Add(new CallTiming(size, times[times.Count / 2]));
        }
        return timings;
    }
}
