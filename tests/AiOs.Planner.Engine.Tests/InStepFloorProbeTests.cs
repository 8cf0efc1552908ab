using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The in-step floor probe (<see cref="InStepFloorProbe"/>): the resident trainer's layer spans on the CPU, no timing asserted.</summary>
[Collection(nameof(TorchGlobalRandom))]
public class InStepFloorProbeTests
{
    private static readonly InStepFloorOptions Cpu = new()
    {
        Device = "cpu",
        Precision = Precision.Fp32,
        Hidden = 64,
        Layers = 3,
        Vocab = 256,
        SeqLen = 16,
        WarmUpSteps = 1,
        MeasuredSteps = 2,
    };

    [Fact]
    public void Given_gpt_and_llama_kinds_When_measured_in_step_on_the_cpu_Then_each_kind_gets_three_positive_floors_over_every_layer_span()
    {
        var gpt = ModelCatalog.Default.Load("tiny-gpt");
        var llama = ModelCatalog.Default.Load("tiny-llama");
        var lines = new List<string>();

        // tiny-gpt's kind twice: measured once.
        var samples = InStepFloorProbe.MeasureKinds([gpt, llama, gpt with { Name = "tiny-gpt-again" }], Cpu, lines.Add);

        Assert.Equal([EngineLayerKind.Of(gpt), EngineLayerKind.Of(llama)], samples.Select(s => s.Kind));
        Assert.Equal(["tiny-gpt", "tiny-llama"], samples.Select(s => s.Family));
        int perPass = Cpu.Layers * Cpu.MeasuredSteps;
        foreach (var s in samples)
        {
            Assert.True(s.ForwardSeconds > 0 && s.AutogradSeconds > 0 && s.BackwardSeconds > 0, $"{s.Kind}: a floor is not positive");
            // Every decoder layer's pass of every measured step (one micro-batch each), and nothing of the embedding or head.
            Assert.Equal(perPass, s.ForwardSpans);
            Assert.Equal(perPass, s.AutogradSpans);
            Assert.Equal(perPass, s.BackwardSpans);
            Assert.Equal($"{s.Family} widened to h=64, 3 layers, mb 1 × 16", s.Setup);
            // The layer-by-layer trainer's run (parameters and optimizer in CPU RAM): every layer's forward, recompute and backward.
            Assert.True(s.LayerwiseForwardSeconds > 0 && s.LayerwiseRecomputeSeconds > 0 && s.LayerwiseBackwardSeconds > 0, $"{s.Kind}: a layer-by-layer floor is not positive");
            Assert.Equal(perPass, s.LayerwiseSpans);
        }
        Assert.Equal(2, lines.Count(l => l.StartsWith("in-step floors of ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Given_a_family_When_made_small_for_the_probe_Then_it_keeps_its_kind_at_the_asked_width_depth_vocabulary_and_sequence()
    {
        var llama = ModelCatalog.Default.Load("llama-3-8b");
        var options = new InStepFloorOptions { Hidden = 768, Layers = 5, Vocab = 512, SeqLen = 64 };

        var small = InStepFloorProbe.Small(llama, options);

        Assert.Equal(EngineLayerKind.Of(llama), EngineLayerKind.Of(small));
        Assert.Equal((768, 5, 512, 64), (small.HiddenSize, small.NumLayers, small.VocabSize, small.MaxSeqLen));
    }

    [Fact]
    public void Given_no_measured_steps_When_measured_Then_it_refuses_naming_the_options()
    {
        var e = Assert.Throws<ArgumentException>(() => InStepFloorProbe.Measure(ModelCatalog.Default.Load("tiny-gpt"), Cpu with { MeasuredSteps = 0 }));
        Assert.Contains("measured step", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_cpu_update_running_beside_When_the_layer_by_layer_passes_are_measured_Then_every_pass_of_every_layer_counts()
    {
        var gpt = ModelCatalog.Default.Load("tiny-gpt");
        var small = InStepFloorProbe.Small(gpt, Cpu);
        var sample = new InStepFloorSample("k", "tiny-gpt", 1, 1, 1, 1, 1, 1, "setup", 1, 1, 1, 1);

        // On the CPU the passes share its cores with the update (no floors there); the mechanism is the same.
        var beside = InStepFloorProbe.WithBesideUpdate(sample, small, Cpu with { UpdateLoadElements = 1 << 16 });

        Assert.Equal(Cpu.Layers * Cpu.MeasuredSteps, beside.BesideSpans);
        Assert.True(beside.BesideForwardSeconds > 0 && beside.BesideRecomputeSeconds > 0 && beside.BesideBackwardSeconds > 0);
        // The resident floors are the sample's own.
        Assert.Equal((1.0, 1.0, 1.0), (beside.ForwardSeconds, beside.AutogradSeconds, beside.BackwardSeconds));
    }

    [Fact]
    public void Given_a_cpu_update_load_When_running_Then_it_updates_until_disposed_and_stops_promptly()
    {
        var load = new CpuUpdateLoad(elements: 4096, threads: 1);
        Assert.True(load.Updates >= 1, "the constructor returns after the first update");
        bool kept = SpinWait.SpinUntil(() => load.Updates >= 3, TimeSpan.FromSeconds(30));
        var stopping = System.Diagnostics.Stopwatch.StartNew();
        load.Dispose();

        Assert.True(kept, $"the load stopped after {load.Updates} updates");
        Assert.True(load.ParametersUpdated >= 3 * 4096, $"{load.ParametersUpdated} parameters counted in {load.Updates} updates");
        Assert.Null(load.Failure);
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(5), $"Dispose took {stopping.Elapsed}");
    }

    [Fact]
    public void Given_a_300_MiB_cache_When_the_load_is_sized_Then_its_state_spans_sixteen_caches_within_a_quarter_of_free_memory()
    {
        var l3 = Bytes.FromMiB(300);

        // 16 bytes of state per parameter: 16 × 300 MiB of state is 300 Mi parameters.
        Assert.Equal(300 << 20, CpuUpdateLoad.ElementsFor(l3, Bytes.FromGiB(100)));
        // 8 GiB free: a quarter, 2 GiB, is 128 Mi parameters.
        Assert.Equal(128 << 20, CpuUpdateLoad.ElementsFor(l3, Bytes.FromGiB(8)));
        // Never under 64 M (1 GiB), nor with the cache unknown.
        Assert.Equal(1 << 26, CpuUpdateLoad.ElementsFor(l3, Bytes.FromGiB(1)));
        Assert.Equal(1 << 26, CpuUpdateLoad.ElementsFor(null, null));
    }
}
