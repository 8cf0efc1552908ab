namespace AiOs.Planner.Cli.Tests;

public sealed class TrainAutoTuneLimitTests
{
    [Fact]
    public void Given_a_gpu_memory_limit_When_train_auto_tunes_for_a_gpu_Then_the_tuner_plans_the_limited_card()
    {
        using var tmp = new TempDir("aios-autotune-limit-");
        string root = tmp.Path;
        // Tuning happens before the device is touched, so this runs on a machine without CUDA too (the run itself then stops).
        var r = CliRunner.Run("train", "--model", "gpt2-xl", "--hardware", "h100-1x-vm", "--device", "cuda", "--auto-tune", "--tune-max-micro-batch", "2",
            "--gpu-memory-limit", "11G", "--steps", "1", "--runs-dir", root, "--run-id", "limited");

        // Run or refused for this host's free RAM (a busy 2-core CI box), the tuner's plan is shown, on the limited card.
        Assert.True(r.Console.Contains("Auto-tuned for h100-1x-vm", StringComparison.Ordinal)
            || Flat(r.Console).Contains("found no settings that both fit h100-1x-vm", StringComparison.Ordinal), r.Console);
        // The 80 GB card held to 11 GiB, as the run would be: before, the tuner planned the whole card and picked
        // settings the run then refused (llama-2-7b: parameters on the GPU, 29.4 GiB).
        Assert.Contains("of 11.00 GiB", r.Console);
        Assert.DoesNotContain("of 79.18 GiB", r.Console);
    }

    [Fact]
    public void Given_allow_8bit_When_train_auto_tunes_an_nvme_bound_13b_Then_the_tuner_may_choose_8bit_state()
    {
        using var tmp = new TempDir("aios-autotune-8bit-");
        string root = tmp.Path;
        string[] args = ["train", "--model", "llama-2-13b", "--hardware", "h200-1x-calibrated", "--device", "cuda", "--auto-tune", "--tune-max-micro-batch", "1",
            "--gpu-memory-limit", "11G", "--nvme-offload-path", Path.Combine(root, "nvme"), "--steps", "1", "--runs-dir", root];
        var without = CliRunner.Run([.. args, "--run-id", "fp32"]);
        var with = CliRunner.Run([.. args, "--run-id", "q8", "--allow-8bit-optimizer"]);

        // The engine takes the best candidate it can run on this host, whose free RAM (not the profile's) it checks: on a
        // small, busy machine a run may find none, and then says so, naming the host RAM and the tuner's best.
        Assert.True(with.Console.Contains("Auto-tuned for h200-1x-calibrated", StringComparison.Ordinal)
            || Flat(with.Console).Contains("found no settings that both fit h200-1x-calibrated", StringComparison.Ordinal), with.Console);
        Assert.Contains("8-bit optimizer state", with.Console);
        if (without.Console.Contains("Auto-tuned for", StringComparison.Ordinal))
            Assert.DoesNotContain("8-bit optimizer state", without.Console.Split("Auto-tuned for")[1].Split('\n')[0]);
        else
        {
            // The card is named as the tuner planned it ("h200-1x-calibrated (GPU held to 11.00 GiB)").
            Assert.Contains("found no settings that both fit h200-1x-calibrated", Flat(without.Console));
            Assert.Contains("and the engine can run here (the best: The engine cannot run these settings: model states and buffers need", Flat(without.Console));
        }
    }

    [Fact]
    public void Given_a_profile_with_more_ram_than_this_host_When_train_auto_tunes_Then_it_says_why_the_tuner_s_best_was_passed_over()
    {
        using var tmp = new TempDir("aios-autotune-passed-over-");
        string root = tmp.Path;
        // llama-2-13b's best on the H200's 126 GiB keeps ~100 GiB of optimizer state in RAM, which no CI host has free.
        var r = CliRunner.Run("train", "--model", "llama-2-13b", "--hardware", "h200-1x-calibrated", "--device", "cuda", "--auto-tune",
            "--tune-max-micro-batch", "1", "--gpu-memory-limit", "11G", "--nvme-offload-path", Path.Combine(root, "nvme"), "--steps", "1",
            "--runs-dir", root, "--run-id", "here");

        // The console wraps at its width: compare with every run of whitespace as one space.
        string tuned = Flat(r.Console.Contains("Auto-tuned for", StringComparison.Ordinal) ? r.Console.Split("Auto-tuned for")[1] : r.Console);
        // A host with that much free (a 128 GB workstation) runs the best as the profile's machine would: nothing to say.
        if (AiOs.Planner.Engine.Execution.HostMemoryEstimate.Available() is { } free && free.Value > 100L << 30) return;
        Assert.Contains("model states and buffers need", tuned);
        Assert.Contains("of host RAM but", tuned);
        Assert.True(tuned.Contains("Not the tuner's best (", StringComparison.Ordinal) || tuned.Contains("found no settings", StringComparison.Ordinal), r.Console);
    }

    [Fact]
    public void Given_allow_8bit_without_auto_tune_When_train_Then_it_is_refused_naming_the_flags()
    {
        var r = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--allow-8bit-optimizer");

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--optimizer-state 8bit", r.Console);
    }

    /// <summary><paramref name="text"/> with every run of whitespace (the console's wrapping) as one space.</summary>
    private static string Flat(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s+", " ");
}
