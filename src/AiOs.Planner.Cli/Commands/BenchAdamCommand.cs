using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json.Nodes;
using AiOs.Planner.Calibration;
using AiOs.Planner.Calibration.Host;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Measurement;
using AiOs.Planner.Models;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios bench-adam</c>: the engine's CPU Adam over one state past the caches, at several parameters per call (a model's
/// units, the calibration's 32 M sub-groups), so a rate measured on one call size can be checked against the sizes a run makes.
/// </summary>
public static class BenchAdamCommand
{
    /// <summary>Call sizes timed when neither <c>--sub-group</c> nor <c>--model</c> is given.</summary>
    public static IReadOnlyList<long> DefaultSubGroups { get; } = [4L << 20, 8L << 20, 16L << 20, AdamProbe.EngineSubGroup, 64L << 20];

    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var kernel = new Option<string[]>("--kernel") { Description = "Update pass: bf16 (the engine's bf16 training), fp16 (its fp16 training), fp32, 8bit; repeat or separate with commas (default bf16)", AllowMultipleArgumentsPerToken = true };
        var subGroups = new Option<long[]>("--sub-group") { Description = "Parameters per call (12.6M, 32M, 4194304); repeat or separate with commas", CustomParser = ParseCounts };
        var models = new Option<string[]>("--model") { Description = "Also time each model's decoder layer and embedding, one call each (the engine updates a unit per call)", AllowMultipleArgumentsPerToken = true };
        var parameters = new Option<long?>("--parameters") { Description = "Parameters in the state walked (default: as calibration sizes it, 16 × the last-level cache, at most a quarter of free memory)", CustomParser = ParseOneCount };
        var threads = new Option<int?>("--threads") { Description = "Update threads (default: every core, as the DeepSpeed schedule runs it; the overlapped and delayed schedules leave one)" };
        var seconds = new Option<double>("--seconds") { Description = "Seconds per call size (at least one pass over the state; default 2)", DefaultValueFactory = _ => 2 };
        var profile = new Option<string?>("--profile") { Description = "Profile whose memory-copy figure the rates are compared with (name or path)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("bench-adam", "Time the engine's CPU Adam at several parameters per call over one state past the caches: parameters per second, bytes moved per second, and their share of the profile's memory-copy rate.")
        {
            kernel, subGroups, models, parameters, threads, seconds, profile, json,
        };
        command.SetAction((r, ct) =>
        {
            try
            {
                var kernels = Split(r.GetValue(kernel)).DefaultIfEmpty("bf16").Select(ParseKernel).Distinct().ToList();
                var sizes = (r.GetValue(subGroups) ?? []).ToList();
                var named = new List<(string Unit, long Parameters)>();
                foreach (string name in Split(r.GetValue(models)))
                {
                    var spec = ModelCatalog.Default.Load(name);
                    named.Add(($"{spec.Name} layer", spec.LayerParameters));
                    named.Add(($"{spec.Name} embedding", spec.EmbeddingParameters));
                }
                sizes.AddRange(named.Select(x => x.Parameters));
                if (sizes.Count == 0) sizes.AddRange(DefaultSubGroups);
                sizes = sizes.Distinct().Order().ToList();
                long state = r.GetValue(parameters) ?? ModeSettings.For(CalibrationMode.Full)
                    .SizedFor(CpuCaches.LastLevel(), HostMemory.Available()).AdamParameters;
                state = Math.Max(state, sizes.Max());
                // The state's bytes (fp32 master, m, v; the gradients and the bf16 copy), against what this machine has free.
                long need = state * kernels.Max(AdamProbe.StateBytesPerParameter);
                if (HostMemory.Available() is { } free && need > free.Value * 0.9)
                    throw new CalibrationException($"The state of {state / 1e6:0.#} M parameters needs {new Units.Bytes(need)}, more than the {free} this machine has free; give a smaller --parameters (or fewer, smaller --sub-group and --model sizes: the state holds the largest call).");
                int n = r.GetValue(threads) ?? Environment.ProcessorCount;
                if (n < 1) throw new CalibrationException($"--threads {n}: give one thread or more.");
                double? copyGbps = r.GetValue(profile) is { } p ? ProfileCatalog.Default.Load(p).Cpu.MemoryBandwidth.GBps : null;
                var duration = TimeSpan.FromSeconds(Math.Max(0.1, r.GetValue(seconds)));
                bool quiet = r.GetValue(json);
                if (!quiet) io.Console.MarkupLineInterpolated($"[grey]state {state / 1e6:0.#} M parameters, {n} threads, last-level cache {CpuCaches.LastLevel()?.ToString() ?? "unknown"}[/]");
                var rows = new List<Row>();
                foreach (var k in kernels)
                {
                    AdamProbe.MeasureSubGroups(k, state, sizes, n, duration, ct, (size, rate) =>
                    {
                        var row = new Row(k, size, rate, rate * AdamProbe.BytesMoved(k) / 1e9, named.Where(x => AdamProbe.CallSize(k, x.Parameters, state) == size).Select(x => x.Unit).ToList());
                        rows.Add(row);
                        if (!quiet) io.Console.MarkupLineInterpolated($"[grey]{Name(k)} {size / 1e6:0.0} M per call: {rate / 1e9:0.000} G params/s[/]");
                    });
                }
                if (quiet) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(rows, state, n, copyGbps)));
                else Render(io.Console, rows, copyGbps);
                return Task.FromResult(ExitCodes.Ok);
            }
            catch (OperationCanceledException)
            {
                io.Errors.MarkupLine("[yellow]interrupted[/]");
                return Task.FromResult(ExitCodes.Interrupted);
            }
            catch (Exception e) when (e is CalibrationException or ArgumentException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return Task.FromResult(ExitCodes.Usage);
            }
        });
        return command;
    }

    private sealed record Row(AdamProbeKernel Kernel, long SubGroup, double Rate, double Gbps, IReadOnlyList<string> Units);

    private static long? ParseOneCount(ArgumentResult result)
    {
        long[] counts = ParseCounts(result);
        if (counts.Length > 1) result.AddError("--parameters takes one count (the state's size); the sizes per call go to --sub-group.");
        return counts.Length == 0 ? null : counts[0];
    }

    private static string Name(AdamProbeKernel k) => k switch
    {
        AdamProbeKernel.Fp32Gradients => "fp32",
        AdamProbeKernel.Bf16Gradients => "bf16",
        AdamProbeKernel.Fp16Copy => "fp16",
        _ => "8bit",
    };

    private static AdamProbeKernel ParseKernel(string s) => s.ToLowerInvariant() switch
    {
        "bf16" => AdamProbeKernel.Bf16Gradients,
        "fp32" => AdamProbeKernel.Fp32Gradients,
        "fp16" => AdamProbeKernel.Fp16Copy,
        "8bit" or "8-bit" => AdamProbeKernel.EightBit,
        _ => throw new CalibrationException($"--kernel {s}: write bf16, fp16, fp32 or 8bit."),
    };

    private static IEnumerable<string> Split(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>Counts such as 12.6M, 32M, 1.5G, 4096 (K, M, G are 10³, 10⁶, 10⁹, as parameter counts are written).</summary>
    internal static long[] ParseCounts(ArgumentResult result)
    {
        var counts = new List<long>();
        foreach (string text in result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (TryParseCount(text, out long n)) counts.Add(n);
            else result.AddError($"'{text}' is not a parameter count; write 4194304, 12.6M or 1.5G.");
        }
        return [.. counts];
    }

    internal static bool TryParseCount(string text, out long count)
    {
        count = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        double scale = char.ToUpperInvariant(text[^1]) switch { 'K' => 1e3, 'M' => 1e6, 'G' => 1e9, _ => 1 };
        string digits = scale == 1 ? text : text[..^1];
        if (!double.TryParse(digits, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v * scale >= 1) || v * scale > int.MaxValue * 64.0) return false;
        count = (long)Math.Round(v * scale);
        return true;
    }

    private static JsonObject Json(List<Row> rows, long state, int threads, double? copyGbps) => new()
    {
        ["state_parameters"] = state,
        ["threads"] = threads,
        ["last_level_cache_bytes"] = CpuCaches.LastLevel()?.Value,
        ["memory_copy_gbps"] = copyGbps,
        ["rows"] = new JsonArray(rows.Select(x => (JsonNode)new JsonObject
        {
            ["kernel"] = Name(x.Kernel), ["sub_group"] = x.SubGroup, ["params_per_s"] = Math.Round(x.Rate), ["bytes_per_parameter"] = AdamProbe.BytesMoved(x.Kernel),
            ["gbps_moved"] = Math.Round(x.Gbps, 3), ["units"] = new JsonArray(x.Units.Select(m => (JsonNode)JsonValue.Create(m)!).ToArray()),
        }).ToArray()),
    };

    private static void Render(IAnsiConsole console, List<Row> rows, double? copyGbps)
    {
        var columns = new List<string> { "kernel", "per call", "G params/s", "GB/s moved" };
        if (copyGbps is not null) columns.Add("÷ memory copy");
        columns.Add("unit");
        var table = new Table().AddTextColumns([.. columns]);
        foreach (var x in rows)
        {
            var cells = new List<string> { Name(x.Kernel), $"{x.SubGroup / 1e6:0.0} M", (x.Rate / 1e9).ToString("0.000", CultureInfo.InvariantCulture), x.Gbps.ToString("0.0", CultureInfo.InvariantCulture) };
            if (copyGbps is { } c) cells.Add((x.Gbps / c).ToString("0.00", CultureInfo.InvariantCulture));
            cells.Add(string.Join(", ", x.Units));
            table.AddTextRow([.. cells]);
        }
        console.Write(table);
        if (copyGbps is { } cg)
            console.MarkupLineInterpolated($"[grey]memory copy {cg:0.0} GB/s (bytes copied; a copy reads and writes each byte). Bytes moved: fp32 and bf16 28, 8-bit 18 per parameter.[/]");
    }
}
