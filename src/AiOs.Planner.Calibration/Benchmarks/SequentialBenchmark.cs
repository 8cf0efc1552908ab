using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.IO;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Benchmarks;

/// <summary>What to compare: a test file in <see cref="Directory"/>, one block size and queue depth, runs of <see cref="Duration"/>.</summary>
public sealed record SequentialBenchmarkOptions
{
    public required string Directory { get; init; }
    public Bytes FileSize { get; init; } = Bytes.FromGiB(4);
    public Bytes BlockSize { get; init; } = Bytes.FromMiB(1);
    public int QueueDepth { get; init; } = 8;
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>Alternating runs of each tool per direction, to see the run-to-run spread.</summary>
    public int Repeats { get; init; } = 3;
    /// <summary>Also run fio on the same file (skipped when fio is missing).</summary>
    public bool WithFio { get; init; } = true;
}

/// <summary>One run of one tool.</summary>
public sealed record BenchmarkRun(string Tool, IoDirection Direction, int Repeat, Bandwidth Rate);

/// <summary>All runs plus the exact fio command lines used.</summary>
public sealed record SequentialBenchmarkReport(SequentialBenchmarkOptions Options, IReadOnlyList<BenchmarkRun> Runs, IReadOnlyList<string> FioCommands, string FioVersion)
{
    /// <summary>Median rate of a tool in a direction, or null when it did not run.</summary>
    public Bandwidth? Median(string tool, IoDirection direction)
    {
        var rates = Runs.Where(r => r.Tool == tool && r.Direction == direction).Select(r => r.Rate.BytesPerSecond).Order().ToArray();
        if (rates.Length == 0) return null;
        double mid = rates.Length % 2 == 1 ? rates[rates.Length / 2] : (rates[rates.Length / 2 - 1] + rates[rates.Length / 2]) / 2;
        return new Bandwidth(mid);
    }
}

/// <summary>
/// Sequential read and write throughput of this library's engine against fio on the same file, block size
/// and queue depth, alternating the tools so drift of a shared disk hits both alike. Both start every run
/// at offset 0.
/// </summary>
public static class SequentialBenchmark
{
    public const string AiosTool = "aios";
    public const string FioTool = "fio";

    /// <summary>Lays out the test file, runs the comparison, and deletes the file (also on cancel).</summary>
    public static async Task<SequentialBenchmarkReport> RunAsync(SequentialBenchmarkOptions o, IProgress<string>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(o);
        bool fio = o.WithFio && FioRunner.IsAvailable();
        var settings = new AioSettings { BlockSize = o.BlockSize, QueueDepth = o.QueueDepth, IntraOpParallelism = 1 };
        var runs = new List<BenchmarkRun>();
        var commands = new List<string>();
        using var testFile = TestFile.Create(o.Directory, o.FileSize, o.FileSize);
        using (var probe = new DriveProbe(testFile.File, testFile.Size))
        {
            progress?.Report($"laying out {testFile.Size} at {testFile.Path}");
            await probe.LayOutAsync(settings, 1, null, ct).ConfigureAwait(false);
            foreach (var direction in new[] { IoDirection.Write, IoDirection.Read })
            {
                var args = FioRunner.Arguments(testFile.Path, testFile.Size, o.BlockSize, o.QueueDepth, direction, o.Duration);
                if (fio) commands.Add(FioRunner.CommandLine(args));
                for (int r = 1; r <= o.Repeats; r++)
                {
                    probe.Rewind();
                    var mine = await probe.MeasureAsync(settings, direction, o.Duration, Bytes.Zero, ct).ConfigureAwait(false);
                    runs.Add(new BenchmarkRun(AiosTool, direction, r, mine.Rate));
                    progress?.Report($"{direction} run {r}: aios {mine.Rate}");
                    if (!fio) continue;
                    var theirs = await FioRunner.RunAsync(args, direction, ct).ConfigureAwait(false);
                    runs.Add(new BenchmarkRun(FioTool, direction, r, theirs));
                    progress?.Report($"{direction} run {r}: fio {theirs}");
                }
            }
        }
        return new SequentialBenchmarkReport(o, runs, commands, fio ? FioRunner.Version() : "not run");
    }
}
