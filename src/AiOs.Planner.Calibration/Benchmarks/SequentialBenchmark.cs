using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Benchmarks;

/// <summary>What to compare: one block size and queue depth; each run moves <see cref="RunSize"/> once.</summary>
public sealed record SequentialBenchmarkOptions
{
    /// <summary>Folder on the drive under test; the test file goes here and is deleted.</summary>
    public required string Directory { get; init; }
    /// <summary>Bytes each run moves; every run has its own region of the file.</summary>
    public Bytes RunSize { get; init; } = Bytes.FromGiB(1);
    /// <summary>Bytes per request, for both tools.</summary>
    public Bytes BlockSize { get; init; } = Bytes.FromMiB(1);
    /// <summary>Requests in flight, for both tools (fio iodepth).</summary>
    public int QueueDepth { get; init; } = 8;
    /// <summary>Alternating runs of each tool per direction, to see the run-to-run spread.</summary>
    public int Repeats { get; init; } = 3;
    /// <summary>This engine submits one request per io_submit call, as fio does by default (iodepth_batch_submit=1).</summary>
    public bool SingleSubmit { get; init; }
    /// <summary>Also run fio on the same file (skipped when fio is missing).</summary>
    public bool WithFio { get; init; } = true;
}

/// <summary>One run of one tool over one region.</summary>
public sealed record BenchmarkRun(string Tool, IoDirection Direction, int Repeat, Bytes Offset, Bandwidth Rate);

/// <summary>All runs plus the exact fio command lines used.</summary>
public sealed record SequentialBenchmarkReport(SequentialBenchmarkOptions Options, Bytes FileSize, IReadOnlyList<BenchmarkRun> Runs, IReadOnlyList<string> FioCommands, string FioVersion)
{
    /// <summary>Median rate of a tool in a direction, or null when it did not run.</summary>
    public Bandwidth? Median(string tool, IoDirection direction)
    {
        var rates = Rates(tool, direction);
        if (rates.Length == 0) return null;
        double mid = rates.Length % 2 == 1 ? rates[rates.Length / 2] : (rates[rates.Length / 2 - 1] + rates[rates.Length / 2]) / 2;
        return new Bandwidth(mid);
    }

    /// <summary>(max − min) / median of a tool's runs in a direction: the run-to-run spread.</summary>
    public double Spread(string tool, IoDirection direction)
    {
        var rates = Rates(tool, direction);
        return rates.Length < 2 ? 0 : (rates[^1] - rates[0]) / Median(tool, direction)!.Value.BytesPerSecond;
    }

    /// <summary>
    /// Median over repeats of aios ÷ fio within the same repeat (the two ran back to back), or null without
    /// fio. Pairing cancels most of a shared disk's drift, which unpaired medians do not.
    /// </summary>
    public double? PairedRatio(IoDirection direction) => Quantile(PairedRatios(direction), 0.5);

    /// <summary>The 25th and 75th percentiles of the paired ratios: how far one repeat's answer can be trusted.</summary>
    public (double Low, double High)? PairedRatioQuartiles(IoDirection direction)
    {
        var r = PairedRatios(direction);
        return r.Length == 0 ? null : (Quantile(r, 0.25)!.Value, Quantile(r, 0.75)!.Value);
    }

    /// <summary>aios ÷ fio per repeat, sorted.</summary>
    public double[] PairedRatios(IoDirection direction) =>
        Runs.Where(r => r.Tool == AiosTool && r.Direction == direction)
            .Join(Runs.Where(r => r.Tool == FioTool && r.Direction == direction), a => a.Repeat, f => f.Repeat, (a, f) => a.Rate.BytesPerSecond / f.Rate.BytesPerSecond)
            .Order().ToArray();

    /// <summary>Linear-interpolated quantile of sorted values; null when empty.</summary>
    internal static double? Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 0) return null;
        double pos = q * (sorted.Length - 1);
        int i = (int)Math.Floor(pos);
        return i + 1 < sorted.Length ? sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
    }

    private const string AiosTool = SequentialBenchmark.AiosTool;
    private const string FioTool = SequentialBenchmark.FioTool;

    private double[] Rates(string tool, IoDirection direction) =>
        Runs.Where(r => r.Tool == tool && r.Direction == direction).Select(r => r.Rate.BytesPerSecond).Order().ToArray();
}

/// <summary>
/// Sequential read and write throughput of this library's engine against fio on the same file, block size
/// and queue depth. The tools alternate (and swap order every repeat) so drift of a shared disk hits both
/// alike, and every run moves its own region of the file once, so no run reads what another has just
/// pulled into a host cache. The file is laid out first (every page unique); writes then go to the first
/// half of the regions and reads come from the second half, which hold only layout data, so both tools
/// read the same kind of data however their writes differ in content.
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
        var settings = new AioSettings { BlockSize = o.BlockSize, QueueDepth = o.QueueDepth, IntraOpParallelism = 1, SingleSubmit = o.SingleSubmit };
        int regionsPerDirection = o.Repeats * (fio ? 2 : 1);
        var size = o.RunSize * (2L * regionsPerDirection);
        var runs = new List<BenchmarkRun>();
        var commands = new List<string>();
        using var testFile = TestFile.Create(o.Directory, size, size);
        using (var probe = new DriveProbe(testFile.File, testFile.Size))
        {
            progress?.Report($"laying out {testFile.Size} at {testFile.Path}");
            await probe.LayOutAsync(settings, 1, null, ct).ConfigureAwait(false);
            foreach (var direction in new[] { IoDirection.Write, IoDirection.Read })
            {
                int region = direction == IoDirection.Write ? 0 : regionsPerDirection;
                for (int r = 1; r <= o.Repeats; r++)
                {
                    foreach (string tool in fio ? new[] { AiosTool, FioTool } : [AiosTool])
                    {
                        // Alternate which tool goes first, so neither always follows the other.
                        string actual = fio && r % 2 == 0 ? (tool == AiosTool ? FioTool : AiosTool) : tool;
                        var offset = o.RunSize * region++;
                        Bandwidth rate;
                        if (actual == AiosTool)
                        {
                            rate = (await probe.MeasureRegionAsync(settings, direction, offset, o.RunSize, ct).ConfigureAwait(false)).Rate;
                        }
                        else
                        {
                            var args = FioRunner.Arguments(testFile.Path, offset, o.RunSize, o.BlockSize, o.QueueDepth, direction);
                            commands.Add(FioRunner.CommandLine(args));
                            rate = await FioRunner.RunAsync(args, direction, ct).ConfigureAwait(false);
                        }
                        runs.Add(new BenchmarkRun(actual, direction, r, offset, rate));
                        progress?.Report($"{direction} run {r}: {actual} {rate}");
                    }
                }
            }
        }
        return new SequentialBenchmarkReport(o, size, runs, commands, fio ? FioRunner.Version() : "not run");
    }
}
