using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Descriptions;
using Spectre.Console.Testing;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// <c>aios launch</c> against DeepSpeed's documented rules: train_batch_size = micro × accumulation × world size, the
/// launcher's own argument names (--hostfile, --num_nodes, --num_gpus, --master_addr, --master_port), the hostfile's
/// "hostname slots=N" lines, a train.py that calls deepspeed.initialize with config=, and an atomic folder.
/// </summary>
public sealed partial class LaunchCommandTests : IDisposable
{
    private readonly TempDir root = new("aios-launch-tests-");

    /// <summary>The arguments DeepSpeed's runner (deepspeed/launcher/runner.py) documents for the ones launch.sh uses.</summary>
    private static readonly HashSet<string> LauncherArguments = ["--hostfile", "--num_nodes", "--num_gpus", "--master_addr", "--master_port"];

    public void Dispose() => root.Dispose();

    [Fact]
    public void Given_two_nodes_of_two_GPUs_When_launched_Then_the_config_batch_is_micro_times_accumulation_times_four_ranks()
    {
        string dir = root.Combine("run");
        var r = Run("--model", "gpt2", "--hardware", "h100-node", "--gpus", "2", "--nodes", "2", "--micro-batch", "3", "--grad-accumulation", "4", "--out", dir);
        Assert.True(r.Code == 0, r.Errors);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "ds_config.json")))!;
        Assert.Equal(3, (int)config["train_micro_batch_size_per_gpu"]!);
        Assert.Equal(4, (int)config["gradient_accumulation_steps"]!);
        Assert.Equal(3 * 4 * 2 * 2, (int)config["train_batch_size"]!);
        // DeepSpeed refuses fp16 and bf16 together.
        Assert.False(config["fp16"]?["enabled"]?.GetValue<bool>() == true && config["bf16"]?["enabled"]?.GetValue<bool>() == true);
    }

    [Fact]
    public void Given_a_launch_folder_When_launch_sh_is_read_Then_it_runs_deepspeed_with_its_documented_arguments_for_the_configs_world()
    {
        string dir = root.Combine("run");
        var r = Run("--model", "gpt2", "--hardware", "h100-node", "--gpus", "2", "--nodes", "3", "--master-port", "29611", "--out", dir);
        Assert.True(r.Code == 0, r.Errors);
        string script = File.ReadAllText(Path.Combine(dir, "launch.sh"));
        string command = string.Join(' ', script.Split('\n').SkipWhile(l => !l.StartsWith("exec deepspeed", StringComparison.Ordinal)).Select(l => l.TrimEnd('\\').Trim()));
        var arguments = LauncherArgument().Matches(command[..command.IndexOf(" train.py", StringComparison.Ordinal)]).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Trim('"'));
        Assert.Subset(LauncherArguments, arguments.Keys.ToHashSet());
        Assert.Equal("hostfile", arguments["--hostfile"]);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "ds_config.json")))!;
        int world = (int)config["train_batch_size"]! / ((int)config["train_micro_batch_size_per_gpu"]! * (int)config["gradient_accumulation_steps"]!);
        Assert.Equal(world, int.Parse(arguments["--num_nodes"]) * int.Parse(arguments["--num_gpus"]));
        Assert.Contains("MASTER_PORT=\"${MASTER_PORT:-29611}\"", script, StringComparison.Ordinal);
        Assert.Contains("train.py --deepspeed_config ds_config.json --model-config model", command, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows()) Assert.True((File.GetUnixFileMode(Path.Combine(dir, "launch.sh")) & UnixFileMode.UserExecute) != 0);
        if (Tool("bash") is { } bash) Assert.Equal(0, Exec(bash, "-n", Path.Combine(dir, "launch.sh")));
    }

    [Fact]
    public void Given_three_nodes_When_launched_Then_the_hostfile_has_one_hostname_slots_line_per_node()
    {
        string dir = root.Combine("run");
        Assert.Equal(0, Run("--model", "gpt2", "--hardware", "h100-node", "--gpus", "4", "--nodes", "3", "--out", dir).Code);
        string[] lines = File.ReadAllLines(Path.Combine(dir, "hostfile"));
        Assert.Equal(3, lines.Length);
        Assert.All(lines, l => Assert.Equal("4", HostfileLine().Match(l).Groups[2].Value));
        Assert.Equal(3, lines.Select(l => l.Split(' ')[0]).Distinct().Count());
    }

    [Fact]
    public void Given_no_hf_model_When_launched_Then_train_py_builds_the_model_from_the_written_config_and_initializes_deepspeed_with_config()
    {
        string dir = root.Combine("run");
        Assert.Equal(0, Run("--model", "gpt2", "--hardware", "h200-1x", "--out", dir).Code);
        var modelConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "model", "config.json")))!;
        Assert.Equal("gpt2", (string)modelConfig["model_type"]!);
        Assert.Equal(50257, (int)modelConfig["vocab_size"]!);
        string train = File.ReadAllText(Path.Combine(dir, "train.py"));
        Assert.Contains("deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)", train, StringComparison.Ordinal);
        Assert.Contains("\"--local_rank\"", train, StringComparison.Ordinal);
        Assert.Contains("HfDeepSpeedConfig(config)", train, StringComparison.Ordinal);
        Assert.Equal("localhost slots=1", File.ReadAllText(Path.Combine(dir, "hostfile")).Trim());
        if (Tool("python3") is { } python)
            Assert.Equal(0, Exec(python, "-c", $"import ast,sys; ast.parse(open(sys.argv[1]).read())", Path.Combine(dir, "train.py")));
    }

    [Fact]
    public void Given_an_hf_model_When_launched_Then_launch_sh_passes_it_and_no_model_config_is_written()
    {
        string dir = root.Combine("run");
        Assert.Equal(0, Run("--model", "gpt2", "--hardware", "h200-1x", "--hf-model", "openai-community/gpt2", "--out", dir).Code);
        Assert.Contains("--hf-model 'openai-community/gpt2'", File.ReadAllText(Path.Combine(dir, "launch.sh")), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "model")));
    }

    [Fact]
    public void Given_a_non_empty_folder_When_launched_without_force_Then_it_is_refused_naming_force_and_left_untouched()
    {
        string dir = root.Combine("run");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "mine.txt"), "keep");
        var r = Run("--model", "gpt2", "--hardware", "h200-1x", "--out", dir);
        Assert.Equal(ExitCodes.Usage, r.Code);
        Assert.Contains("--force", r.Errors, StringComparison.Ordinal);
        Assert.Equal(["mine.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_a_non_empty_folder_When_launched_with_force_Then_it_is_replaced_whole_and_no_partial_folder_is_left()
    {
        string dir = root.Combine("run");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "old.txt"), "old");
        Assert.Equal(0, Run("--model", "gpt2", "--hardware", "h200-1x", "--out", dir, "--force").Code);
        Assert.False(File.Exists(Path.Combine(dir, "old.txt")));
        Assert.True(File.Exists(Path.Combine(dir, "train.py")));
        Assert.Equal(["run"], Directory.GetFileSystemEntries(root.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_an_empty_existing_folder_When_launched_Then_it_is_filled()
    {
        string dir = root.Combine("run");
        Directory.CreateDirectory(dir);
        Assert.Equal(0, Run("--model", "gpt2", "--hardware", "h200-1x", "--out", dir).Code);
        Assert.True(File.Exists(Path.Combine(dir, "ds_config.json")));
    }

    [Fact]
    public void Given_a_bad_setting_When_launched_Then_nothing_is_written()
    {
        string dir = root.Combine("run");
        var r = Run("--model", "gpt2", "--hardware", "h200-1x", "--micro-batch", "0", "--out", dir);
        Assert.Equal(ExitCodes.Usage, r.Code);
        Assert.False(Directory.Exists(dir));
    }

    [GeneratedRegex(@"(--[a-z_]+)=(\S+)")]
    private static partial Regex LauncherArgument();

    [GeneratedRegex(@"^(\S+) slots=(\d+)$")]
    private static partial Regex HostfileLine();

    /// <summary>Runs <c>aios launch ARGS</c> as Program.Run would once the command is registered (same error handling).</summary>
    private static (int Code, string Errors) Run(params string[] args)
    {
        var console = new TestConsole().Width(200);
        var errors = new TestConsole().Width(200);
        var io = new CliIo(console, new StringWriter(), errors);
        var rootCommand = new RootCommand { LaunchCommand.Create(io) };
        var parse = rootCommand.Parse(["launch", .. args]);
        if (parse.Errors.Count > 0) return (ExitCodes.Usage, string.Join("\n", parse.Errors.Select(e => e.Message)));
        try
        {
            return (parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }), errors.Output);
        }
        catch (DescriptionException e)
        {
            return (ExitCodes.Usage, e.Message);
        }
    }

    private static string? Tool(string name) =>
        (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static int Exec(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        p.WaitForExit();
        return p.ExitCode;
    }
}
