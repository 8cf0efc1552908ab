using AiOs.Planner.Records;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Swap checksums in whole runs: no false alarm against the reference, and a swap file damaged mid-run stops it.</summary>
public sealed class SwapChecksumsRunTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-sumrun-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_EverythingOnNvmeWithChecksumsAndSmallPieces_When_Trained_Then_LossesEqualTheReference(bool directIo)
    {
        // 16 KiB pieces: sub-groups of 20,000 elements start and end inside pieces, so partial-piece writes and reads are checked too.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = _root,
            PipelineRead = true,
            Aio = new AioSettings { BlockSize = Bytes.FromKiB(16), QueueDepth = 4 },
        };
        EngineOptions options = LayerwiseTrainerTests.Options() with { SwapChecksums = true, DirectIo = directIo };

        var (losses, _) = LayerwiseTrainerTests.Run(spec, settings, options, reference: false);
        var (reference, _) = LayerwiseTrainerTests.Run(spec, settings, LayerwiseTrainerTests.Options(), reference: true);

        for (int s = 0; s < losses.Length; s++) Assert.Equal(reference[s], losses[s], 5);
    }

    [Theory]
    [InlineData("optim-")]
    [InlineData("param-")]
    public void Given_ASwapFileZeroedAfterStepOne_When_RunWithChecksums_Then_TheRunStopsNamingTheFileAndPiece(string keys)
    {
        var (request, store) = Corrupted("on", checksums: true, keys);

        var e = Assert.Throws<InvalidDataException>(() => EngineRun.Execute(request, new Once(() => store.Value!.Armed = true)));

        Assert.Contains(Path.Combine(_root, "nvme", "aios-on"), e.Message);
        Assert.Matches("piece \\d+ ", e.Message);
        string summary = File.ReadAllText(Path.Combine(_root, "runs", "on", "summary.json"));
        Assert.Contains("does not match the checksum", summary);
    }

    [Fact]
    public void Given_ASwapFileZeroedAfterStepOne_When_RunWithoutChecksums_Then_TheRunFinishesWithOtherLosses()
    {
        // What --no-swap-checksums gives up: the same damage goes unnoticed.
        var (clean, _) = Corrupted("clean", checksums: true);
        var (damaged, store) = Corrupted("off", checksums: false);

        RunSummary expected = EngineRun.Execute(clean);
        RunSummary got = EngineRun.Execute(damaged, new Once(() => store.Value!.Armed = true));

        Assert.True(got.Completed);
        Assert.NotEqual(expected.FinalLoss, got.FinalLoss);
    }

    private (EngineRunRequest Request, StrongBox Store) Corrupted(string runId, bool checksums, string keys = "optim-")
    {
        var box = new StrongBox();
        var request = new EngineRunRequest
        {
            Model = ModelCatalog.Default.Load("tiny-gpt"),
            Settings = LayerwiseTrainerTests.Small() with
            {
                ParamOffload = OffloadTier.Nvme,
                OptimizerOffload = OffloadTier.Nvme,
                NvmePath = Path.Combine(_root, "nvme"),
                GradAccumulation = 1,
            },
            Steps = 4,
            RunsRoot = Path.Combine(_root, "runs"),
            Options = LayerwiseTrainerTests.Options() with { RunId = runId, SwapChecksums = checksums },
            SwapStore = dir => box.Value = new ZeroingStore(new DirectSwapStore(dir, checksums: checksums), dir, keys),
        };
        return (request, box);
    }

    private sealed class StrongBox
    {
        public ZeroingStore? Value;
    }

    /// <summary>Once armed, zeroes up to 64 KiB in the middle of the range the next read of a file named <c>keys…</c> asks for, before the read, as a failing drive would.</summary>
    private sealed class ZeroingStore(ISwapStore inner, SwapDirectory dir, string keys) : ISwapStore
    {
        public volatile bool Armed;

        public void Write(string key, long offset, ReadOnlySpan<byte> data) => inner.Write(key, offset, data);

        public void Read(string key, long offset, Span<byte> destination)
        {
            if (Armed && key.StartsWith(keys, StringComparison.Ordinal))
            {
                Armed = false;
                int count = Math.Min(64 * 1024, destination.Length);
                using var f = new FileStream(dir.FileFor(key), FileMode.Open, FileAccess.Write);
                f.Position = offset + (destination.Length - count) / 2;
                f.Write(new byte[count]);
            }
            inner.Read(key, offset, destination);
        }

        public void Dispose() => inner.Dispose();
    }

    private sealed class Once(Action action) : IProgress<StepMetrics>
    {
        private bool _done;

        public void Report(StepMetrics value)
        {
            if (_done) return;
            _done = true;
            action();
        }
    }
}
