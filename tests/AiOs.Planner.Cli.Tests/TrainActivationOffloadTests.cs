namespace AiOs.Planner.Cli.Tests;

/// <summary><c>aios train --offload-activations cpu</c> (issue 14 item 5): the layer-by-layer engine runs it; the resident trainer refuses it by name.</summary>
public sealed class TrainActivationOffloadTests : IDisposable
{
    private readonly TempDir _root = new("aios-actoff-");

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Given_params_and_optimizer_in_ram_with_checkpointing_When_trained_with_checkpoints_in_cpu_ram_Then_it_runs_its_steps()
    {
        var result = CliRunner.Run("train", "--device", "cpu", "--model", "tiny-gpt", "--offload-params", "cpu", "--offload-optimizer", "cpu",
            "--grad-checkpointing", "--offload-activations", "cpu", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", _root.Combine("runs"), "--run-id", "actoff");

        Assert.True(result.ExitCode == ExitCodes.Ok, result.Console);
        Assert.DoesNotContain("not executed by the bundled engine", result.Console);
        // The run's trace holds the copies out and back it executed (the console's table shows only the largest operations,
        // which on a slower machine need not include them).
        string trace = File.ReadAllText(_root.Combine("runs", "actoff", "trace.jsonl"));
        Assert.Contains("\"operation\":\"activation_offload\"", trace);
        Assert.Contains("\"operation\":\"activation_fetch\"", trace);
    }

    [Fact]
    public void Given_nothing_offloaded_When_trained_with_checkpoints_in_cpu_ram_Then_it_is_refused_naming_offload_params()
    {
        var result = CliRunner.Run("train", "--device", "cpu", "--model", "tiny-gpt", "--grad-checkpointing", "--offload-activations", "cpu",
            "--steps", "1", "--seq-len", "16", "--micro-batch", "1", "--runs-dir", _root.Combine("runs"), "--run-id", "resident");

        Assert.NotEqual(ExitCodes.Ok, result.ExitCode);
        Assert.Contains("--offload-params cpu", result.Console);
    }
}
