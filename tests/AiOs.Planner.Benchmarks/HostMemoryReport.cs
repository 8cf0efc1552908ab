using System.Globalization;
using AiOs.Planner.Memory;
using AiOs.Planner.Records;

namespace AiOs.Planner.Benchmarks;

/// <summary>
/// <c>host-memory RUN_FOLDER…</c>: the engine's measured host memory per parameter against the planner's <c>aios</c>
/// figure (<see cref="EngineMemory.HostNeed"/>, the same definition the engine's refusal check uses), with start-up
/// time and the first step against later ones (issue 14). Reads what <c>aios train</c> wrote; runs nothing itself, so the
/// training can run on the GPU machine and the folders be read anywhere.
/// </summary>
internal static class HostMemoryReport
{
    /// <summary>Prints one line per run folder; exit code 1 when one is off the plan by more than 10%.</summary>
    public static int Run(IReadOnlyList<string> folders)
    {
        if (folders.Count == 0)
        {
            Console.Error.WriteLine("usage: host-memory RUN_FOLDER... (folders `aios train --runs-dir` wrote; run with --steps 3 or more)");
            return 2;
        }
        int off = 0;
        Console.WriteLine("run | model | params | peak RSS | B/param | planned | B/param | measured/planned | start-up s | first step / later");
        foreach (string folder in folders)
        {
            RecordedRun run = RecordedRun.Load(folder);
            if (run.Settings is not { } recorded || run.Summary is not { } summary || run.Profile is not { } hardware)
            {
                Console.Error.WriteLine($"{folder}: settings.json, summary.json or profile.json is missing; rerun `aios train` to the end.");
                off++;
                continue;
            }
            long parameters = recorded.Model.TotalParameters;
            long measured = summary.PeakResidentBytes;
            long planned = EngineMemory.HostNeed(recorded.Model, recorded.Settings, hardware.HasGpu).Sum(i => i.Item.Bytes.Value);
            double ratio = measured / (double)planned;
            var later = run.Steps.Skip(1).Select(s => s.WallMs).Order().ToArray();
            string first = later.Length == 0 ? "n/a" : (run.Steps[0].WallMs / later[later.Length / 2]).ToString("0.00", CultureInfo.InvariantCulture);
            // Launch to the end of the run, less the steps: building the tiers and initial weights (and the short teardown).
            double total = (File.GetLastWriteTimeUtc(Path.Combine(run.Directory, RecordedRun.SummaryFile)) - File.GetLastWriteTimeUtc(Path.Combine(run.Directory, RecordedRun.SettingsFile))).TotalSeconds;
            double startup = total - run.Steps.Sum(s => s.WallMs) / 1000;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Path.GetFileName(run.Directory)} | {recorded.Model.Name} | {parameters / 1e9:0.000}B | {measured / 1e9:0.000} GB | {measured / (double)parameters:0.0} | {planned / 1e9:0.000} GB | {planned / (double)parameters:0.0} | {ratio:0.00} | {startup:0} | {first}"));
            if (Math.Abs(ratio - 1) > 0.10) off++;
        }
        return off == 0 ? 0 : 1;
    }
}
