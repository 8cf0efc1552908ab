namespace AiOs.Planner.Cli.Tests;

public sealed class TrainAutoTuneLimitTests
{
    [Fact]
    public void Given_a_gpu_memory_limit_When_train_auto_tunes_for_a_gpu_Then_the_tuner_plans_the_limited_card()
    {
        string root = Directory.CreateTempSubdirectory("aios-autotune-limit-").FullName;
        try
        {
            // Tuning happens before the device is touched, so this runs on a machine without CUDA too (the run itself then stops).
            var r = CliRunner.Run("train", "--model", "gpt2-xl", "--hardware", "h100-1x-vm", "--device", "cuda", "--auto-tune", "--tune-max-micro-batch", "2",
                "--gpu-memory-limit", "11G", "--steps", "1", "--runs-dir", root, "--run-id", "limited");

            Assert.Contains("Auto-tuned for h100-1x-vm", r.Console);
            // The 80 GB card held to 11 GiB, as the run would be: before, the tuner planned the whole card and picked
            // settings the run then refused (llama-2-7b: parameters on the GPU, 29.4 GiB).
            Assert.Contains("of 11.00 GiB", r.Console);
            Assert.DoesNotContain("of 79.18 GiB", r.Console);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
