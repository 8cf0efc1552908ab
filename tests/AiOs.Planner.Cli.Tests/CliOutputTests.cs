using System.Text.Json;
using System.Text.RegularExpressions;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// Every command of <c>aios --help</c>, on inputs that reach its tables and messages with names and paths holding
/// <c>[</c> and <c>]</c>: no markup exception, no literal markup, errors on stderr; with --json, stdout holds one JSON
/// document on success and nothing on failure.
/// </summary>
public sealed partial class CliOutputTests(CliOutputWorld w) : IClassFixture<CliOutputWorld>
{
    private sealed record Case(string[] Args, int Exit, string? Shows = null);

    /// <summary>Runs covering each command's tables, messages and errors; the name starts with the command.</summary>
    private static readonly Dictionary<string, Func<CliOutputWorld, Case>> Renders = new()
    {
        ["plan fits"] = w => new(["plan", "--model", w.Model, "--hardware", w.Gpu], ExitCodes.Ok, "hw[1]"),
        ["plan does not fit"] = w => new(["plan", "--model", "llama-2-70b", "--hardware", w.Gpu, "--offload-optimizer", "none", "--offload-params", "none"], ExitCodes.Infeasible, "Not feasible"),
        ["plan bad settings"] = w => new(["plan", "--model", w.Model, "--hardware", w.Gpu, "--micro-batch", "0"], ExitCodes.Usage, "--micro-batch"),
        ["plan missing model file"] = w => new(["plan", "--model", Path.Combine(w.Root, "none[1].json"), "--hardware", w.Gpu], ExitCodes.Usage, "none[1]"),
        ["check-nvme folder with leftovers"] = w => new(["check-nvme", w.Nvme], ExitCodes.Ok, "dead-run"),
        ["check-nvme sized for a plan"] = w => new(["check-nvme", w.Nvme, "--model", w.Model, "--hardware", w.Gpu], ExitCodes.Ok, "nvme[1]"),
        ["check-nvme falls back to CPU"] = w => new(["check-nvme", w.Model, "--model", w.Model, "--hardware", w.Gpu], ExitCodes.FellBackToCpu, "fallback:"),
        ["check-nvme no fallback"] = w => new(["check-nvme", w.Model, "--model", w.Model, "--hardware", w.Gpu, "--no-fallback"], ExitCodes.Infeasible, "error:"),
        ["check-nvme model without hardware"] = w => new(["check-nvme", w.Nvme, "--model", w.Model], ExitCodes.Usage, "--hardware"),
        ["clean dry run"] = w => new(["clean", w.Nvme, "--dry-run"], ExitCodes.Ok, "aios-dead-run"),
        ["clean nothing there"] = w => new(["clean", Directory.CreateDirectory(w.Fresh("empty[1]")).FullName], ExitCodes.Ok, "Nothing of aios's"),
        ["clean not a folder"] = w => new(["clean", Path.Combine(w.Root, "none[1]")], ExitCodes.Usage, "none[1]"),
        ["ds-config to a file with warnings"] = w => new(["ds-config", "--model", w.Model, "--hardware", w.Gpu, "--schedule", "overlapped", "--offload-optimizer", "cpu", "--out", w.Fresh("ds[1]") + ".json"], ExitCodes.Ok, "ds[1]"),
        ["ds-config to stdout"] = w => new(["ds-config", "--model", w.Model, "--hardware", w.Gpu, "--schedule", "overlapped", "--offload-optimizer", "cpu"], ExitCodes.Ok, "warning:"),
        ["launch to a folder"] = w => new(["launch", "--model", w.Model, "--hardware", w.Gpu, "--hf-model", "gpt2", "--out", w.Fresh("launch[1]")], ExitCodes.Ok, "launch[1]"),
        ["launch bad settings"] = w => new(["launch", "--model", w.Model, "--hardware", w.Gpu, "--micro-batch", "0", "--out", w.Fresh("launch[2]")], ExitCodes.Usage, "--micro-batch"),
        ["ds-config bad settings"] = w => new(["ds-config", "--model", w.Model, "--hardware", w.Gpu, "--micro-batch", "0"], ExitCodes.Usage, "--micro-batch"),
        ["models"] = _ => new(["models"], ExitCodes.Ok, "tiny-gpt"),
        ["profiles"] = _ => new(["profiles"], ExitCodes.Ok, "ci-2core-24gb"),
        ["tune with an out folder"] = w => new(["tune", "--model", w.Model, "--hardware", w.Gpu, "--budget", "200", "--out", w.Fresh("tune[1]")], ExitCodes.Ok, "tune[1]"),
        ["tune missing profile"] = w => new(["tune", "--model", w.Model, "--hardware", Path.Combine(w.Root, "none[1].json")], ExitCodes.Usage, "none[1]"),
        ["whatif with plots"] = w => new(["whatif", "--model", w.Model, "--hardware", w.Gpu, "--plots", w.Fresh("plots[1]"), "--no-upgrades"], ExitCodes.Ok, "x[1]"),
        ["whatif missing model"] = w => new(["whatif", "--model", Path.Combine(w.Root, "none[1].json"), "--hardware", w.Gpu], ExitCodes.Usage, "none[1]"),
        ["bench-drive"] = w => new(["bench-drive", "--path", w.Root, "--no-fio", "--run-size", "8M", "--repeats", "1"], ExitCodes.Ok, "[quartiles]"),
        ["bench-drive missing folder"] = w => new(["bench-drive", "--path", Path.Combine(w.Root, "none[1]"), "--no-fio"], ExitCodes.Usage, "none[1]"),
        ["bench-adam"] = _ => new(["bench-adam", "--parameters", "2M", "--sub-group", "1M,2M", "--seconds", "0.05", "--threads", "1", "--kernel", "bf16,8bit"], ExitCodes.Ok, "G params/s"),
        ["bench-adam not a count"] = _ => new(["bench-adam", "--sub-group", "12x[1]"], ExitCodes.Usage, "12x[1]"),
        ["bench-adam two state sizes"] = _ => new(["bench-adam", "--parameters", "1M,2M"], ExitCodes.Usage, "--parameters takes one count"),
        ["bench-adam state past free memory"] = _ => new(["bench-adam", "--parameters", "100G", "--seconds", "0.05"], ExitCodes.Usage, "smaller --parameters"),
        ["bench-adam unknown kernel"] = _ => new(["bench-adam", "--kernel", "fp8[1]", "--parameters", "1M", "--seconds", "0.05"], ExitCodes.Usage, "fp8[1]"),
        ["bench-dispatch"] = w => new(["bench-dispatch", "--device", "cpu", "--precision", "fp32", "--model", w.TinyModel, "--calls", "20", "--repeats", "1"], ExitCodes.Ok, "host µs a call"),
        ["bench-dispatch missing model"] = w => new(["bench-dispatch", "--device", "cpu", "--model", Path.Combine(w.Root, "none[1].json")], ExitCodes.Usage, "none[1]"),
        ["bench-dispatch graph on a cpu"] = w => new(["bench-dispatch", "--device", "cpu", "--model", w.TinyModel, "--graph"], ExitCodes.Usage, "--graph"),
        ["bench-dispatch second gpu"] = _ => new(["bench-dispatch", "--device", "cuda:1"], ExitCodes.Usage, "CUDA_VISIBLE_DEVICES"),
        ["bench-dispatch sequence too long"] = w => new(["bench-dispatch", "--device", "cpu", "--model", w.TinyModel, "--seq-len", "100000"], ExitCodes.Usage, "--seq-len 100000"),
        ["bench-collectives one rank"] = _ => new(["bench-collectives", "--gpus", "1", "--device", "cpu"], ExitCodes.Usage, "--gpus 1"),
        ["bench-collectives unknown profile"] = w => new(["bench-collectives", "--gpus", "2", "--device", "cpu", "--hardware", Path.Combine(w.Root, "none[1].json")], ExitCodes.Usage, "none[1]"),
        ["calibrate missing folder"] = w => new(["calibrate", "--nvme-path", Path.Combine(w.Root, "none[1]"), "--quick"], ExitCodes.Usage, "none[1]"),
        ["calibrate quick and full"] = w => new(["calibrate", "--nvme-path", w.Root, "--quick", "--full"], ExitCodes.Usage, "--quick"),
        ["calibrate-cpu without a base"] = w => new(["calibrate-cpu", "--out", Path.Combine(w.Root, "none[1].json")], ExitCodes.Usage, "none[1]"),
        ["calibrate-gpu without a GPU"] = w => new(["calibrate-gpu", "--out", w.Fresh("gpu[1]") + ".json", "--base", w.Cpu], ExitCodes.Usage, "error:"),
        ["learn with cross-validation"] = w => new(["learn", "--from-runs", w.History, "--profile", w.Cpu, "--cross-validate", "2", "--out", w.Fresh("learned[1]") + ".json"], ExitCodes.Ok, "learned[1]"),
        ["learn without out"] = w => new(["learn", "--from-runs", w.History, "--profile", w.Cpu], ExitCodes.Usage, "--out"),
        ["train with a prediction"] = w => new(Train(w, w.Fresh("runs[1]")), ExitCodes.Ok, "cpu[1]"),
        ["train missing dataset"] = w => new([.. Train(w, w.Fresh("runs[1]")), "--dataset-file", Path.Combine(w.Root, "none[1].txt")], ExitCodes.Usage, "none[1]"),
        ["report"] = w => new(["report", TrainedRun(w)], ExitCodes.Ok, "Wrote"),
        ["report compare"] = w => new(["report", TrainedRun(w), "--compare", TrainedRun(w), "--out", w.Fresh("report[1]")], ExitCodes.Ok, "against out"),
        ["doctor"] = w => new(["doctor", "--nvme-path", w.Nvme], ExitCodes.Ok, "nvme[1]"),
        ["export-hf without checkpoints"] = w => new(["export-hf", Directory.CreateDirectory(w.Fresh("run[1]")).FullName, "--model", w.TinyModel, "--out", w.Fresh("hf[1]")], ExitCodes.Usage, "run[1]"),
        ["export-hf trained run"] = w => new(["export-hf", TrainedRun(w, saveEvery: true), "--model", w.TinyModel, "--out", w.Fresh("hf[1]")], ExitCodes.Ok, "hf[1]"),
        ["logits missing tokens"] = w => new(["logits", "--model", w.TinyModel, "--tokens", Path.Combine(w.Root, "none[1].json"), "--out", w.Fresh("l[1]") + ".safetensors"], ExitCodes.Usage, "none[1]"),
        ["report missing run"] = w => new(["report", Path.Combine(w.Root, "none[1]")], ExitCodes.Usage, "none[1]"),
        ["convert-checkpoint missing source"] = w => new(["convert-checkpoint", "--from", Path.Combine(w.Root, "none[1]"), "--to", w.Fresh("ck[1]"), "--optimizer-state", "8bit"], ExitCodes.Usage, "none[1]"),
        ["fit-eager fits"] = w => new(["fit-eager", "--baselines", EagerBaselines(w), "--hardware", w.Gpu, "--fit-models", w.Model, "--out", w.Fresh("fit[1]") + ".json"], ExitCodes.Ok, "x[1]"),
        ["fit-eager missing file"] = w => new(["fit-eager", "--baselines", Path.Combine(w.Root, "none[1].jsonl"), "--hardware", w.Gpu], ExitCodes.Usage, "none[1]"),
        ["fit-eager every row fitted"] = w => new(["fit-eager", "--baselines", EagerBaselines(w), "--hardware", w.Gpu, "--fit-models", $"{w.Model},gpt2-medium"], ExitCodes.Usage, "--fit-models"),
        ["serve missing runs folder"] = w => new(["serve", "--runs", Path.Combine(w.Root, "none[1]")], ExitCodes.Usage, "none[1]"),
    };

    /// <summary>For each command with --json: a run that succeeds and one that fails, with the exit code it must give.</summary>
    private static readonly Dictionary<string, Func<CliOutputWorld, Case>> Json = new()
    {
        ["plan ok"] = w => new(["plan", "--model", w.Model, "--hardware", w.Gpu, "--json"], ExitCodes.Ok),
        ["plan fails"] = w => new(["plan", "--model", w.Model, "--hardware", w.Gpu, "--micro-batch", "0", "--json"], ExitCodes.Usage),
        ["check-nvme ok"] = w => new(["check-nvme", w.Nvme, "--json"], ExitCodes.Ok),
        ["check-nvme falls back"] = w => new(["check-nvme", w.Model, "--model", w.Model, "--hardware", w.Gpu, "--json"], ExitCodes.FellBackToCpu),
        ["check-nvme fails"] = w => new(["check-nvme", w.Nvme, "--model", w.Model, "--json"], ExitCodes.Usage),
        ["clean ok"] = w => new(["clean", w.Nvme, "--dry-run", "--json"], ExitCodes.Ok),
        ["clean fails"] = w => new(["clean", Path.Combine(w.Root, "none[1]"), "--json"], ExitCodes.Usage),
        ["models ok"] = _ => new(["models", "--json"], ExitCodes.Ok),
        ["models fails"] = _ => new(["models", "--json", "--no-such-flag"], ExitCodes.Usage),
        ["profiles ok"] = _ => new(["profiles", "--json"], ExitCodes.Ok),
        ["profiles fails"] = _ => new(["profiles", "--json", "extra"], ExitCodes.Usage),
        ["tune ok"] = w => new(["tune", "--model", w.Model, "--hardware", w.Gpu, "--budget", "200", "--json"], ExitCodes.Ok),
        ["tune fails"] = w => new(["tune", "--model", w.Model, "--hardware", Path.Combine(w.Root, "none[1].json"), "--json"], ExitCodes.Usage),
        ["whatif ok"] = w => new(["whatif", "--model", w.Model, "--hardware", w.Gpu, "--no-upgrades", "--json"], ExitCodes.Ok),
        ["whatif fails"] = w => new(["whatif", "--model", Path.Combine(w.Root, "none[1].json"), "--hardware", w.Gpu, "--json"], ExitCodes.Usage),
        ["bench-drive ok"] = w => new(["bench-drive", "--path", w.Root, "--no-fio", "--run-size", "8M", "--repeats", "1", "--json"], ExitCodes.Ok),
        ["bench-drive fails"] = w => new(["bench-drive", "--path", Path.Combine(w.Root, "none[1]"), "--no-fio", "--json"], ExitCodes.Usage),
        ["bench-adam ok"] = _ => new(["bench-adam", "--parameters", "1M", "--sub-group", "512K", "--seconds", "0.05", "--threads", "1", "--json"], ExitCodes.Ok),
        ["bench-adam fails"] = _ => new(["bench-adam", "--threads", "0", "--parameters", "1M", "--json"], ExitCodes.Usage),
        ["bench-dispatch ok"] = w => new(["bench-dispatch", "--device", "cpu", "--precision", "fp32", "--model", "none", "--calls", "10", "--repeats", "1", "--json"], ExitCodes.Ok),
        ["bench-dispatch fails"] = _ => new(["bench-dispatch", "--device", "cpu", "--calls", "0", "--json"], ExitCodes.Usage),
        ["bench-collectives fails"] = _ => new(["bench-collectives", "--gpus", "2", "--device", "tpu", "--json"], ExitCodes.Usage),
        ["calibrate fails"] = w => new(["calibrate", "--nvme-path", Path.Combine(w.Root, "none[1]"), "--quick", "--json"], ExitCodes.Usage),
        ["calibrate-cpu fails"] = w => new(["calibrate-cpu", "--out", Path.Combine(w.Root, "none[1].json"), "--json"], ExitCodes.Usage),
        ["learn ok"] = w => new(["learn", "--from-runs", w.History, "--profile", w.Cpu, "--cross-validate", "2", "--json"], ExitCodes.Ok),
        ["learn fails"] = w => new(["learn", "--from-runs", w.History, "--profile", w.Cpu, "--json"], ExitCodes.Usage),
        ["doctor ok"] = w => new(["doctor", "--nvme-path", w.Nvme, "--json"], ExitCodes.Ok),
        ["doctor fails"] = _ => new(["doctor", "--json", "--no-such-flag"], ExitCodes.Usage),
        ["fit-eager ok"] = w => new(["fit-eager", "--baselines", EagerBaselines(w), "--hardware", w.Gpu, "--fit-models", w.Model, "--json"], ExitCodes.Ok),
        ["fit-eager fails"] = w => new(["fit-eager", "--baselines", EagerBaselines(w), "--hardware", w.Gpu, "--fit-every", "1", "--json"], ExitCodes.Usage),
        ["train ok"] = w => new([.. Train(w, w.Fresh("runs[1]")), "--json"], ExitCodes.Ok),
        ["train fails"] = w => new([.. Train(w, w.Fresh("runs[1]")), "--dataset-file", Path.Combine(w.Root, "none[1].txt"), "--json"], ExitCodes.Usage),
    };

    /// <summary>Successes not run here, and why: they measure this machine for tens of seconds to minutes.</summary>
    private static readonly Dictionary<string, string> JsonSuccessNotRun = new()
    {
        ["calibrate"] = "measures the drive, memory copy and CPU Adam (30 s with --quick)",
        ["calibrate-cpu"] = "times matmuls and decoder layers with TorchSharp",
        ["bench-collectives"] = "starts one process per rank (TrainRanksTests runs it as a process)",
    };

    private static string[] Train(CliOutputWorld w, string runsDir) =>
        ["train", "--model", w.TinyModel, "--hardware", w.Cpu, "--steps", "2", "--seq-len", "16", "--micro-batch", "1", "--runs-dir", runsDir, "--run-id", "out"];

    private static string TrainedRun(CliOutputWorld w, bool saveEvery = false)
    {
        string runs = w.Fresh("runs[1]");
        string[] extra = saveEvery ? ["--save-every", "2", "--json"] : ["--json"];
        Assert.Equal(ExitCodes.Ok, CliRunner.Run([.. Train(w, runs), .. extra]).ExitCode);
        return Path.Combine(runs, "out");
    }

    /// <summary>
    /// A torch_baselines.py file (name with brackets): the fit model is the bracketed gpt2 file <c>x[1]</c>, the test model
    /// gpt2-medium; a failed run whose message holds brackets is skipped.
    /// </summary>
    private static string EagerBaselines(CliOutputWorld w)
    {
        string path = w.Fresh("eager[1]") + ".jsonl";
        var lines = new List<string>();
        foreach (string model in new[] { w.Model, "gpt2-medium" })
            foreach (int mb in new[] { 1, 8 })
                foreach (string precision in new[] { "bf16", "fp32" })
                    foreach (bool ckpt in new[] { false, true })
                        lines.Add(JsonSerializer.Serialize(new Dictionary<string, object?>
                        {
                            ["impl"] = "torch-eager", ["model"] = model, ["micro_batch"] = mb, ["seq_len"] = 1024, ["precision"] = precision,
                            ["grad_checkpointing"] = ckpt, ["median_ms"] = (model == w.Model ? 40.0 : 90.0) * (1 + mb / 4.0) * (precision == "fp32" ? 2 : 1), ["error"] = null,
                        }));
        lines.Add("""{"impl":"torch-eager","model":"gpt2","micro_batch":64,"seq_len":1024,"median_ms":null,"error":"CUDA out of memory [oom]"}""");
        File.WriteAllLines(path, lines);
        return path;
    }

    public static TheoryData<string> RenderCases => [.. Renders.Keys];

    public static TheoryData<string> JsonCases => [.. Json.Keys];

    [GeneratedRegex(@"\[/\]|\[(red|yellow|green|grey|bold)\]")]
    private static partial Regex LiteralMarkup();

    [Theory]
    [MemberData(nameof(RenderCases))]
    public void Given_names_with_brackets_When_a_command_renders_Then_no_markup_error_no_literal_markup_and_errors_on_stderr(string name)
    {
        var c = Renders[name](w);

        var r = CliRunner.Run(c.Args);

        string all = r.Console + r.Stdout;
        Assert.True(c.Exit == r.ExitCode, $"{name}: exit {r.ExitCode}, expected {c.Exit}\n{all}");
        Assert.DoesNotMatch(LiteralMarkup(), all);
        if (c.Shows is { } shows) Assert.Contains(shows, all, StringComparison.Ordinal);
        Assert.DoesNotContain("error:", r.Tables, StringComparison.Ordinal);
        Assert.DoesNotContain("warning:", r.Tables, StringComparison.Ordinal);
        if (r.ExitCode == ExitCodes.Usage) Assert.Contains("error:", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(JsonCases))]
    public void Given_json_When_a_command_succeeds_or_fails_Then_stdout_is_one_document_or_empty_and_errors_are_on_stderr(string name)
    {
        var c = Json[name](w);

        var r = CliRunner.Run(c.Args);

        Assert.True(c.Exit == r.ExitCode, $"{name}: exit {r.ExitCode}, expected {c.Exit}\nstdout: {r.AllStdout}\nstderr: {r.Stderr}");
        if (c.Exit is ExitCodes.Ok or ExitCodes.FellBackToCpu)
        {
            // JsonDocument.Parse refuses anything after the first document, so this checks "exactly one".
            using var doc = JsonDocument.Parse(r.AllStdout);
        }
        else
        {
            Assert.Equal("", r.AllStdout);
            Assert.Contains("error:", r.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Given_the_commands_of_aios_help_When_listed_Then_each_has_render_cases_and_json_cases_where_it_has_json()
    {
        var commands = Commands();
        Assert.NotEmpty(commands);

        foreach (string command in commands)
        {
            Assert.True(Renders.Keys.Any(k => k == command || k.StartsWith(command + " ", StringComparison.Ordinal)), $"aios {command} has no render case in {nameof(Renders)}");
            if (!CliRunner.Run(command, "--help").Stdout.Contains("--json", StringComparison.Ordinal)) continue;
            Assert.True(Json.ContainsKey(command + " fails"), $"aios {command} --json has no failing case in {nameof(Json)}");
            Assert.True(Json.ContainsKey(command + " ok") || JsonSuccessNotRun.ContainsKey(command), $"aios {command} --json has no succeeding case in {nameof(Json)}");
        }
    }

    /// <summary>The command names listed under "Commands:" by <c>aios --help</c>.</summary>
    private static List<string> Commands()
    {
        var help = CliRunner.Run("--help");
        Assert.Equal(ExitCodes.Ok, help.ExitCode);
        var lines = help.Stdout.Split('\n');
        return lines.SkipWhile(l => !l.StartsWith("Commands:", StringComparison.Ordinal)).Skip(1)
            .TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal))
            .Select(l => l.Trim().Split(' ')[0])
            .Where(n => n.Length > 0)
            .ToList();
    }
}
