using System.CommandLine;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Engine.Checkpoints;
using Spectre.Console.Testing;

namespace AiOs.Planner.Cli.Tests;

/// <summary><c>aios convert-checkpoint</c> end to end: a trained run's checkpoint to 8-bit and back, and the refusals.</summary>
public sealed class ConvertCheckpointCommandTests : IDisposable
{
    private readonly TempDir _root = new("aios-convert-");

    public void Dispose() => _root.Dispose();

    /// <summary>Runs the command through its own root, so the tests stand before Program.cs registers it (afterwards <see cref="CliRunner"/> works too).</summary>
    private static CliRunner.Result Convert(params string[] args)
    {
        var console = new TestConsole().Width(200);
        var errors = new TestConsole().Width(200);
        var stdout = new StringWriter();
        var root = new RootCommand("test") { ConvertCheckpointCommand.Create(new CliIo(console, stdout, errors)) };
        var parse = root.Parse(["convert-checkpoint", .. args]);
        int code = parse.Errors.Count > 0 ? ExitCodes.Usage : parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = stdout });
        string parseErrors = string.Join("\n", parse.Errors.Select(e => e.Message));
        return new CliRunner.Result(code, console.Output + errors.Output + parseErrors, stdout.ToString()) { Stderr = errors.Output + parseErrors, Tables = console.Output };
    }

    private string TrainedCheckpoint()
    {
        string runs = _root.Combine("runs");
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1", "--precision", "fp32",
            "--runs-dir", runs, "--run-id", "one", "--save-every", "2");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        return Path.Combine(runs, "one", "checkpoints", "step-2");
    }

    [Fact]
    public void Given_a_trained_checkpoint_When_converted_to_8bit_and_back_Then_both_succeed_and_the_master_weights_are_byte_identical()
    {
        string source = TrainedCheckpoint(), q = _root.Combine("q8"), back = _root.Combine("back");
        var toQ = Convert("--from", source, "--to", q, "--optimizer-state", "8bit");
        var toFp32 = Convert("--from", q, "--to", back, "--optimizer-state", "fp32");
        Assert.Equal((ExitCodes.Ok, ExitCodes.Ok), (toQ.ExitCode, toFp32.ExitCode));
        Assert.Contains("from fp32 to 8bit optimizer state", toQ.Console);
        Assert.Contains("Converted step 2 of tiny-gpt", toFp32.Console);
        Assert.Contains("\"optimizer_state\": \"8bit\"", File.ReadAllText(Path.Combine(q, Checkpoint.ManifestFile)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, Checkpoint.ModelFile)), File.ReadAllBytes(Path.Combine(back, Checkpoint.ModelFile)));
    }

    [Fact]
    public void Given_a_target_that_exists_When_converted_Then_it_is_a_usage_error_naming_to()
    {
        string source = TrainedCheckpoint();
        var r = Convert("--from", source, "--to", source, "--optimizer-state", "8bit");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--to", r.Stderr);
        Assert.Contains("already exists", r.Stderr);
    }

    [Fact]
    public void Given_a_folder_that_is_not_a_checkpoint_When_converted_Then_it_is_a_usage_error_naming_the_manifest()
    {
        var r = Convert("--from", _root.Path, "--to", _root.Combine("out"), "--optimizer-state", "8bit");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("checkpoint.json is missing", r.Stderr);
        Assert.False(Directory.Exists(_root.Combine("out")));
    }

    [Fact]
    public void Given_an_unknown_format_When_parsed_Then_it_is_refused_listing_the_choices()
    {
        var r = Convert("--from", _root.Path, "--to", _root.Combine("out"), "--optimizer-state", "4bit");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("fp32", r.Stderr);
        Assert.Contains("8bit", r.Stderr);
    }
}
