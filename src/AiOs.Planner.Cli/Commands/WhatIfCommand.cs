using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios whatif</c>: models × machines (and upgrades), each at its best settings.</summary>
public static class WhatIfCommand
{
    public static Command Create(CliIo io)
    {
        var models = new Option<string>("--model", "-m") { Description = "Models, comma-separated (names or paths), or 'all'", Required = true };
        var hardware = new Option<string>("--hardware", "-H") { Description = "Profiles, comma-separated (names or paths), or 'all'", Required = true };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per sequence", DefaultValueFactory = _ => 1024 };
        var precision = new Option<Precision>("--precision") { Description = "fp32|bf16|fp16", DefaultValueFactory = _ => Precision.Bf16, CustomParser = SettingsOptions.ParseEnum<Precision> };
        var executor = new Option<ExecutorKind>("--executor") { Description = "What each cell predicts: aios (the bundled engine) | deepspeed (DeepSpeed with PyTorch)", DefaultValueFactory = _ => ExecutorKind.Aios, CustomParser = SettingsOptions.ParseEnum<ExecutorKind> };
        var minRate = new Option<double>("--min-tokens-per-s") { Description = "Report the largest model each machine trains at this rate or better", DefaultValueFactory = _ => 0 };
        var noUpgrades = new Option<bool>("--no-upgrades") { Description = "Skip the +1 drive, 2× RAM and +1 GPU variants" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var gpuLimit = GpuMemoryLimitOption.Create();
        var shared = new SettingsOptions();
        var plots = new Option<string?>("--plots") { Description = "Folder for the figures (PNG and SVG): throughput per machine and model, speed-up per upgrade" };
        // The same search flags and defaults as `aios tune`, so a cell equals tune's best for the same inputs.
        var search = new TuneCommand.SearchOptions();
        var command = new Command("whatif", "Compare predicted throughput, fit and bottleneck across models and machines, and what an upgrade changes; each cell is what `aios tune` finds for the same inputs.")
            { models, hardware, seqLen, precision, executor, minRate, noUpgrades, json, plots, gpuLimit, shared.OffloadActivations, shared.TilingFactor };
        foreach (var o in search.All) command.Options.Add(o);
        command.SetAction(r =>
        {
            var request = new WhatIfRequest
            {
                Models = Split(r.GetValue(models)!, ModelCatalog.Default.Names()).Select(ModelCatalog.Default.Load).OrderBy(m => m.TotalParameters).ToList(),
                Hardware = Split(r.GetValue(hardware)!, ProfileCatalog.Default.Names()).Select(ProfileCatalog.Default.Load)
                    .Select(p => Planning.GpuMemoryLimit.Apply(p, r.GetValue(gpuLimit))).ToList(),
                Base = new TrainingSettings
                {
                    SeqLen = r.GetValue(seqLen), Precision = r.GetValue(precision), Executor = r.GetValue(executor),
                    ActivationOffload = r.GetValue(shared.OffloadActivations) ?? OffloadTier.None, TilingFactor = r.GetValue(shared.TilingFactor) ?? 1,
                }.Validated(model: null),
                Upgrades = !r.GetValue(noUpgrades),
                MinTokensPerSecond = r.GetValue(minRate),
                Budget = Math.Max(1, r.GetValue(search.Budget)),
                MaxGradAccumulation = r.GetValue(search.MaxAccumulation),
                MaxMicroBatch = r.GetValue(search.MaxMicro),
                GlobalBatch = r.GetValue(search.GlobalBatch),
                MemoryHeadroom = r.GetValue(search.Headroom),
                AllowEightBitOptimizer = r.GetValue(search.AllowEightBit),
                OptimizerRamMargin = r.GetValue(search.OptimizerRamMargin),
            };
            var problems = WhatIf.Check(request);
            foreach (var p in problems) io.Console.MarkupLineInterpolated($"[red]error:[/] {p}");
            if (problems.Count > 0) return ExitCodes.Usage;
            var result = WhatIf.Run(request);
            if (r.GetValue(plots) is { } folder)
                foreach (string png in Reports.WhatIfFigures.Write(result, folder))
                    if (!r.GetValue(json)) io.Console.MarkupLineInterpolated($"Wrote {png}");
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(SearchDocuments.WhatIf(result, r.GetValue(gpuLimit)?.Value)));
            else
            {
                if (r.GetValue(gpuLimit) is { } cap) io.Console.MarkupLineInterpolated($"[grey]note:[/] {Planning.GpuMemoryLimit.Flag} {cap}: every GPU planned with {cap} of its memory");
                Render(io.Console, result, request.MinTokensPerSecond);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static IEnumerable<string> Split(string list, IReadOnlyList<string> all) =>
        list.Trim() == "all" ? all : list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static void Render(IAnsiConsole console, WhatIfResult result, double minRate)
    {
        var models = result.Cells.Select(c => c.Model).Distinct().ToList();
        var table = new Table().Title("Predicted tokens/s at the best settings (bottleneck)").AddTextColumns("machine");
        foreach (string m in models) table.AddTextColumns(m);
        foreach (var row in result.Cells.GroupBy(c => (c.Hardware, c.Variant)))
        {
            var cells = new List<string> { Markup.Escape(row.Key.Variant == WhatIf.AsIs ? row.Key.Hardware : $"  {row.Key.Variant}") };
            cells.AddRange(models.Select(m => row.FirstOrDefault(c => c.Model == m) is { Fits: true } c
                ? $"{c.TokensPerSecond:N0} ({Markup.Escape(c.Bottleneck)}; {c.SequencesPerStep:N0} seq/step)" : "[red]no fit[/]"));
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        console.MarkupLine("Each cell is `aios tune`'s best for the same inputs; seq/step is its global batch (sequences per optimizer step), fixed with --global-batch.");
        foreach (var c in result.Cells.Where(c => !c.Fits && c.Note.Length > 0).DistinctBy(c => c.Note))
            console.MarkupLineInterpolated($"{c.Model} on {c.Hardware} ({c.Variant}): {c.Note}");
        foreach (var (machine, model) in result.LargestAtRate)
            console.MarkupLineInterpolated($"{machine}: largest model at ≥ {minRate:N0} tokens/s: {model ?? "none"}");
    }
}
