using System.Diagnostics;
using System.Globalization;
using AiOs.Planner.Calibration.Host;

namespace AiOs.Planner.Benchmarks;

/// <summary>
/// Issue 13: the fixed cost of one CPU Adam update call. `dotnet run -c Release -- adamcall [threads] [seconds per size]`
/// times the engine's bf16 update (CpuAdam.StepBf16Gradients, what OptimizerStates.Step runs for a sub-group in RAM) and
/// the fp32 and 8-bit ones (BlockwiseAdam) on calls of 4 K to 64 M parameters walking through a 64 M-parameter state, and fits t = a + b·n with the
/// fit calibration uses (<see cref="CallCostFit"/>); then what a call's thread hand-off alone costs (an empty parallel loop).
/// </summary>
public static class AdamCallCost
{
    private static readonly long[] Sizes = [4L << 10, 16L << 10, 64L << 10, 256L << 10, 1L << 20, 4L << 20, 16L << 20, 64L << 20];

    public static void Run(string[] args)
    {
        int threads = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : Environment.ProcessorCount;
        double seconds = args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        Console.WriteLine($"{Environment.ProcessorCount} cores, {threads} threads, {seconds:0.##} s per size, load {Load()}");
        foreach (var kernel in new[] { AdamProbeKernel.Bf16Gradients, AdamProbeKernel.Fp32Gradients, AdamProbeKernel.EightBit })
        {
            var timings = AdamCallProbe.Measure(kernel, Sizes, Sizes.Max(), threads, TimeSpan.FromSeconds(seconds), CancellationToken.None);
            var fit = CallCostFit.Fit(timings);
            Console.WriteLine($"{kernel}: fit a = {fit.PerCallSeconds * 1e6:0.0} µs per call, b = {fit.SecondsPerElement * 1e9:0.000} ns per parameter ({fit.ElementsPerSecond / 1e9:0.00} G params/s)");
            foreach (var (n, t) in timings)
                Console.WriteLine($"  {n,10:N0}: median {t * 1e6,10:0.0} µs  {n / t / 1e9,5:0.00} G params/s  fit {fit.Seconds(n) * 1e6,10:0.0} µs ({fit.Seconds(n) / t - 1,6:+0.0%;-0.0%})");
        }
        // The bare hand-off: a pass of 16 empty chunks (a 1 M-parameter call's chunking) through Parallel.For and the workers CpuAdam uses.
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        var workers = AiOs.Planner.Optim.CpuWorkers.Shared(threads);
        Console.WriteLine($"empty pass of 16 chunks, {threads} threads: Parallel.For {HandOff(() => Parallel.For(0, 16, options, _ => { }))}; " +
            $"CpuWorkers {HandOff(() => workers.For(16, _ => { }))}; load after {Load()}");
    }

    /// <summary>Median and 90th percentile of 2,000 back-to-back runs of <paramref name="pass"/>, in µs.</summary>
    private static string HandOff(Action pass)
    {
        var calls = new double[2000];
        for (int i = 0; i < calls.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            pass();
            calls[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(calls);
        return $"median {calls[calls.Length / 2] * 1e6:0.0} µs, p90 {calls[calls.Length * 9 / 10] * 1e6:0.0} µs";
    }

    private static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
}
