using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The layer-by-layer trainer as an executor of its step program: failures, phases.</summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class LayerwiseProgramTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-layerwise-prog-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 2 };

    private TrainingSettings OnNvme(int accumulation) => LayerwiseTrainerTests.Small() with
    {
        ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = _nvme, GradAccumulation = accumulation, MicroBatch = 1, SeqLen = 16,
    };

    [Fact]
    public void Given_a_parameter_read_that_fails_on_the_nvme_thread_When_a_step_runs_Then_the_stores_own_exception_surfaces_and_the_trainer_disposes_cleanly()
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var failing = new FailingStore();
        var trainer = new LayerwiseTrainer(Spec, OnNvme(1), LayerwiseTrainerTests.Options(), swapStore: dir => failing.Wrap(new FileSwapStore(dir, checksums: true)));
        failing.Armed = true;

        var e = Assert.Throws<InvalidDataException>(() => trainer.Step(m => data.Sample(1, 0, m, 1, 16)));

        Assert.Contains("param-u1", e.Message);
        trainer.Dispose();
        Assert.Empty(Directory.GetDirectories(_nvme));
    }

    [Fact]
    public void Given_accumulation_When_a_step_runs_Then_its_phases_sum_every_micro_batchs_forward_and_add_up_to_the_steps_extent()
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using var trainer = new LayerwiseTrainer(Spec, OnNvme(3), LayerwiseTrainerTests.Options());

        StepResult r = trainer.Step(m => data.Sample(1, 0, m, 1, 16));

        var spans = trainer.Trace.SpansOf(1);
        var program = trainer.Program;
        long ForwardComputeOf(int mb) => spans.Where(s => s.OpId >= 0 && program.Ops[s.OpId] is { Phase: StepPhase.Forward, Resource: ResourceKind.Compute } op && op.MicroBatch == mb)
            .Sum(s => s.Duration.Nanoseconds);
        Assert.True(r.Forward.Nanoseconds >= ForwardComputeOf(0) + ForwardComputeOf(1) + ForwardComputeOf(2),
            $"forward {r.Forward} is less than the three micro-batches' forward compute");
        Assert.True((r.Forward + r.Backward + r.Optimizer).Nanoseconds <= r.Wall.Nanoseconds + 1_000_000, $"phases {r.Forward}+{r.Backward}+{r.Optimizer} exceed the wall time {r.Wall}");
    }

    /// <summary>Fails the second read of layer 1's parameters as a checksum mismatch would.</summary>
    private sealed class FailingStore
    {
        public volatile bool Armed;
        private int _reads;

        public ISwapStore Wrap(ISwapStore inner) => new Store(this, inner);

        private sealed class Store(FailingStore owner, ISwapStore inner) : ISwapStore
        {
            public void Write(string key, long offset, ReadOnlySpan<byte> data) => inner.Write(key, offset, data);

            public void Read(string key, long offset, Span<byte> destination)
            {
                if (owner.Armed && key == "param-u1" && Interlocked.Increment(ref owner._reads) == 2)
                    throw new InvalidDataException("Swap file param-u1 piece 0: checksum mismatch (test).");
                inner.Read(key, offset, destination);
            }

            public void Dispose() => inner.Dispose();
        }
    }
}
