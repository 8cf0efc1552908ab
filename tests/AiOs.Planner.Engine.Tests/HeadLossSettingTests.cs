using System.Reflection;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// <c>--head-loss</c> in the engine: <see cref="OuterBlock"/> runs the head its caller names (the trainers pass their
/// settings' head), and <see cref="EngineSettings.ResolveHeadLoss"/> resolves auto by Core's rule on the card the run
/// plans for, so the engine never decides on its own.
/// </summary>
public sealed class HeadLossSettingTests
{
    private const int Batch = 4, Seq = 64; // 256 tokens: tiny-gpt's fused head lowers the bytes here, so auto without a budget fuses

    public HeadLossSettingTests() => TorchRuntime.EnsureReady();

    [Theory]
    [InlineData(HeadLoss.Fused, true)]
    [InlineData(HeadLoss.Unfused, false)]
    [InlineData(HeadLoss.Auto, true)]
    public void Given_a_head_When_the_loss_is_taken_Then_that_head_runs_and_gives_the_unfused_references_loss(HeadLoss head, bool fused)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        Assert.True(EngineHeadLoss.FusingSavesBytes(Batch * Seq, spec.VocabSize, spec.HiddenSize, Precision.Fp32));
        using var model = new GptModel(spec, ScalarType.Float32, CPU);
        float[][] w = InitialWeights.Create(spec, 7);
        for (int u = 0; u < model.UnitCount; u++)
        {
            using var t = tensor(w[u]);
            model.Unit(u).CopyFrom(t);
        }
        using var g = new Generator(3);
        using var tokens = randint(0, spec.VocabSize, [Batch, Seq], ScalarType.Int64, generator: g);
        using var targets = randint(0, spec.VocabSize, [Batch, Seq], ScalarType.Int64, generator: g);
        using var hidden = model.Hidden(tokens, null);

        double reference = model.Outer.UnchunkedLoss(hidden, targets, 2).item<float>();
        double loss = model.Outer.Loss(hidden, targets, 2, head).item<float>();

        Assert.Equal(fused, model.Outer.LastLossFused);
        Assert.Equal(reference, loss, 1e-5 * reference);
    }

    [Theory]
    [InlineData(HeadLoss.Unfused, false)]
    [InlineData(HeadLoss.Fused, true)]
    public void Given_settings_with_a_head_When_the_resident_trainer_steps_Then_it_runs_that_head_and_follows_the_reference(HeadLoss head, bool fused)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { MicroBatch = Batch, SeqLen = Seq, HeadLoss = head };
        EngineOptions options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        TokenBatch BatchOf(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);

        using var trainer = new DeviceTrainer(spec, settings, options);
        double[] losses = Enumerable.Range(0, 2).Select(s => trainer.Step(m => BatchOf(s, m)).Loss).ToArray();
        using var reference = new ReferenceTrainer(spec, settings, options);
        double[] expected = Enumerable.Range(0, 2).Select(s => reference.Step(m => BatchOf(s, m)).Loss).ToArray();

        var model = (GptModel)typeof(DeviceTrainer).GetField("_model", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(trainer)!;
        Assert.Equal(fused, model.Outer.LastLossFused);
        for (int s = 0; s < losses.Length; s++) Assert.Equal(expected[s], losses[s], 2e-5);
    }

    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");
    private static readonly TrainingSettings Gpt2Mb8 = new() { MicroBatch = 8, SeqLen = 1024, Precision = Precision.Bf16 };

    [Fact]
    public void Given_gpt2_mb8_on_cuda_with_an_80GB_profile_When_resolved_for_the_run_Then_the_kernels_fused_head_as_the_plan_and_unfused_in_fp16()
    {
        var options = new EngineOptions { Device = "cuda" };

        var resolved = EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, options, H100);
        var fp16 = EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8 with { Precision = Precision.Fp16 }, options, H100);

        Assert.Equal(HeadLoss.Fused, resolved.HeadLoss);
        Assert.Equal(EngineHeadLoss.Resolve(Gpt2, H100, Gpt2Mb8), resolved.HeadLoss);
        Assert.Equal(HeadLoss.Unfused, fp16.HeadLoss); // no kernel in fp16: the unfused head, which fits, is the faster there
    }

    [Fact]
    public void Given_a_limit_only_the_fused_head_fits_When_resolved_for_the_run_Then_fused_with_or_without_a_profile()
    {
        Bytes fused = EngineMemory.DevicePeak(Gpt2, H100, Gpt2Mb8, fused: true), unfused = EngineMemory.DevicePeak(Gpt2, H100, Gpt2Mb8, fused: false);
        var options = new EngineOptions { Device = "cuda", GpuMemoryLimit = new Bytes((fused.Value + unfused.Value) / 2) };

        Assert.Equal(HeadLoss.Fused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, options, H100).HeadLoss);
        Assert.Equal(HeadLoss.Fused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, options, profile: null).HeadLoss);
        // In fp16 (no kernel) a limit of exactly the unfused peak keeps the unfused head, which fits; in bf16 the kernel's fused head runs.
        var fp16 = Gpt2Mb8 with { Precision = Precision.Fp16 };
        Bytes unfused16 = EngineMemory.DevicePeak(Gpt2, H100, fp16, fused: false);
        Assert.Equal(HeadLoss.Unfused, EngineSettings.ResolveHeadLoss(Gpt2, fp16, options with { GpuMemoryLimit = unfused16 }, profile: null).HeadLoss);
        Assert.Equal(HeadLoss.Fused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, options with { GpuMemoryLimit = unfused }, profile: null).HeadLoss);
    }

    [Fact]
    public void Given_no_device_budget_When_resolved_for_the_run_Then_the_byte_rule_and_a_forced_head_is_kept()
    {
        // A CPU run (whatever GPU the profile describes), and CUDA with neither a GPU profile nor a limit: the fused head where it saves bytes.
        Assert.Equal(HeadLoss.Fused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, new EngineOptions { Device = "cpu" }, H100).HeadLoss);
        Assert.Equal(HeadLoss.Fused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8, new EngineOptions { Device = "cuda" }, profile: null).HeadLoss);
        Assert.Equal(HeadLoss.Unfused, EngineSettings.ResolveHeadLoss(Gpt2, Gpt2Mb8 with { HeadLoss = HeadLoss.Unfused }, new EngineOptions { Device = "cpu" }, null).HeadLoss);
    }
}
