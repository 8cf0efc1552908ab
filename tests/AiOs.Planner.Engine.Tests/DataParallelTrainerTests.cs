using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Issue 18's exactness target: 2 and 4 ranks over the shared-memory collectives give the losses and weights of one rank
/// with the same global batch (one rank accumulating every rank's micro-batches), to 1e-5 in fp32, for every placement.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class DataParallelTrainerTests : IDisposable
{
    private const int Steps = 4;
    private const int PerRank = 2;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-dp-nvme-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private TrainingSettings Settings(OffloadTier parameters, OffloadTier optimizer, OffloadTier gradients, int accumulation, StepSchedule schedule = StepSchedule.DeepSpeed) => LayerwiseTrainerTests.Small() with
    {
        Schedule = schedule,
        GradAccumulation = accumulation,
        ParamOffload = parameters,
        OptimizerOffload = optimizer,
        GradientOffload = gradients,
        NvmePath = _nvme,
    };

    private static (double[] Losses, float[][] Master, Metrics.IoTotals Io) Train(ModelSpec spec, TrainingSettings settings, EngineOptions options, ICollectives? ranks)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[Steps];
        using ITrainer t = Trainers.Create(spec, settings, options with { RunId = $"dp-r{ranks?.Rank ?? 0}-{Guid.NewGuid():N}" }, ranks: ranks);
        for (int s = 0; s < Steps; s++)
        {
            int step = s;
            losses[s] = t.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)).Loss;
        }
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray(), t.Io.Snapshot());
    }

    public static TheoryData<OffloadTier, OffloadTier, OffloadTier, int> Placements() => new()
    {
        { OffloadTier.None, OffloadTier.None, OffloadTier.None, 2 },
        { OffloadTier.None, OffloadTier.Cpu, OffloadTier.Cpu, 2 },
        { OffloadTier.Cpu, OffloadTier.Cpu, OffloadTier.Cpu, 2 },
        { OffloadTier.Cpu, OffloadTier.Nvme, OffloadTier.Cpu, 2 },
        { OffloadTier.Nvme, OffloadTier.Nvme, OffloadTier.Nvme, 2 },
        { OffloadTier.Nvme, OffloadTier.Cpu, OffloadTier.Cpu, 4 },
        { OffloadTier.Cpu, OffloadTier.Cpu, OffloadTier.Cpu, 4 },
        { OffloadTier.None, OffloadTier.None, OffloadTier.None, 4 },
    };

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_Ranks_When_Trained_Then_LossesAndWeightsEqualOneRankWithTheSameGlobalBatch(OffloadTier parameters, OffloadTier optimizer, OffloadTier gradients, int world)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(1.0, ClipMode.GlobalNorm));
        var (oneLosses, oneMaster, oneIo) = Train(spec, Settings(parameters, optimizer, gradients, PerRank * world), options, ranks: null);

        var ranks = CollectiveThreads.Run(world, c => Train(spec, Settings(parameters, optimizer, gradients, PerRank), options, c), regionBytes: 1 << 20);

        foreach (var (losses, master, io) in ranks)
        {
            // ZeRO-3: each rank moves only its shard of every unit to and from its tier, for its 1/world of the micro-batches: 1/world² of
            // what one rank moves for the whole batch (padding aside). Whole units would move 1/world of it.
            long Share(long one) => one / (world * world) + one / 100;
            Assert.True(io.Uploaded.Value <= Share(oneIo.Uploaded.Value), $"rank uploads {io.Uploaded} of one rank's {oneIo.Uploaded}");
            Assert.True(io.Downloaded.Value <= Share(oneIo.Downloaded.Value), $"rank downloads {io.Downloaded} of one rank's {oneIo.Downloaded}");
            if (parameters != OffloadTier.None) Assert.True(io.Uploaded.Value > 0);
            for (int s = 0; s < Steps; s++) Assert.Equal(oneLosses[s], losses[s], 1e-5);
            for (int u = 0; u < master.Length; u++)
            {
                Assert.Equal(oneMaster[u].Length, master[u].Length);
                float worst = oneMaster[u].Zip(master[u], (a, b) => Math.Abs(a - b)).Max();
                Assert.True(worst < 1e-5f, $"unit {u}: weights differ by {worst} from one rank's");
            }
        }
        // Training moved the weights, so agreeing is not trivially true.
        Assert.NotEqual(oneLosses[0], oneLosses[^1]);
    }

    /// <summary>Steps [from, to) of a run that starts from <paramref name="resume"/> (or afresh) and checkpoints at the end into <paramref name="save"/> when given.</summary>
    private static double[] Segment(ModelSpec spec, TrainingSettings settings, EngineOptions options, ICollectives? ranks, string? resume, int to, string? save)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using ITrainer t = Trainers.Create(spec, settings, options with { RunId = $"dp-r{ranks?.Rank ?? 0}-{Guid.NewGuid():N}" }, ranks: ranks);
        if (resume is not null) t.RestoreCheckpoint(resume);
        var losses = new List<double>();
        for (int s = t.CompletedSteps; s < to; s++)
        {
            int step = s;
            losses.Add(t.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)).Loss);
        }
        if (save is not null) t.SaveCheckpoint(save);
        return [.. losses];
    }

    public static TheoryData<OffloadTier, int, int> Resumes() => new()
    {
        { OffloadTier.Cpu, 2, 2 },
        { OffloadTier.Cpu, 2, 1 },
        { OffloadTier.Nvme, 4, 2 },
        { OffloadTier.None, 2, 4 },
        { OffloadTier.Cpu, 1, 2 },
    };

    [Theory]
    [MemberData(nameof(Resumes))]
    public void Given_ACheckpointOfRanks_When_ResumedOnAnyNumberOfRanks_Then_TheRunContinuesAsIfUninterrupted(OffloadTier parameters, int savedBy, int resumedBy)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options();
        const int global = 4;
        TrainingSettings For(int world) => Settings(parameters, OffloadTier.Cpu, OffloadTier.Cpu, global / world);
        double[] whole = Segment(spec, For(1), options, null, null, Steps, null);
        string root = Directory.CreateTempSubdirectory("aios-dp-ckpt-").FullName;
        try
        {
            if (savedBy == 1) Segment(spec, For(1), options, null, null, Steps / 2, root);
            else CollectiveThreads.Run(savedBy, c => Segment(spec, For(savedBy), options, c, null, Steps / 2, root), regionBytes: 1 << 20);
            string checkpoint = Checkpoints.Checkpoint.Latest(root) ?? throw new InvalidOperationException("No checkpoint was written.");
            double[][] resumed = resumedBy == 1
                ? [Segment(spec, For(1), options, null, checkpoint, Steps, null)]
                : CollectiveThreads.Run(resumedBy, c => Segment(spec, For(resumedBy), options, c, checkpoint, Steps, null), regionBytes: 1 << 20);
            foreach (double[] losses in resumed)
            {
                Assert.Equal(Steps - Steps / 2, losses.Length);
                for (int s = 0; s < losses.Length; s++) Assert.Equal(whole[Steps / 2 + s], losses[s], 1e-5);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData(Precision.Fp16)]
    [InlineData(Precision.Bf16)]
    public void Given_MixedPrecisionRanks_When_Trained_Then_TheyFollowOneRankAndAgreeOnEveryLossScaleAndSkip(Precision precision)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options();
        TrainingSettings For(int world) => Settings(OffloadTier.Cpu, OffloadTier.Cpu, OffloadTier.Cpu, 4 / world) with { Precision = precision };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        StepResult[] Run(ICollectives? ranks)
        {
            using ITrainer t = Trainers.Create(spec, For(ranks?.WorldSize ?? 1), options with { RunId = $"mp-{ranks?.Rank ?? 0}-{Guid.NewGuid():N}" }, ranks: ranks);
            return [.. Enumerable.Range(0, Steps).Select(s => t.Step(m => data.Sample(options.Seed, s, m, 2, 32)))];
        }

        StepResult[] one = Run(null);
        StepResult[][] ranks = CollectiveThreads.Run(2, c => Run(c), regionBytes: 1 << 20);

        foreach (StepResult[] steps in ranks)
            for (int s = 0; s < Steps; s++)
            {
                // The gradients are averaged in the training precision (fp16 in fp32), so the sums round differently from one rank's.
                Assert.Equal(one[s].Loss, steps[s].Loss, 2e-3);
                Assert.Equal(one[s].LossScale, steps[s].LossScale);
                Assert.Equal(one[s].Skipped, steps[s].Skipped);
            }
        Assert.Equal(ranks[0].Select(r => r.Loss), ranks[1].Select(r => r.Loss));
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, OffloadTier.Cpu, 2)]
    [InlineData(OffloadTier.Nvme, OffloadTier.Nvme, 2)]
    [InlineData(OffloadTier.None, OffloadTier.Cpu, 4)]
    public void Given_TheOverlappedScheduleOnRanks_When_Trained_Then_LossesAndWeightsEqualOneRankWithTheSameGlobalBatch(OffloadTier parameters, OffloadTier optimizer, int world)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options();
        var (oneLosses, oneMaster, _) = Train(spec, Settings(parameters, optimizer, OffloadTier.Cpu, PerRank * world, StepSchedule.Overlapped), options, ranks: null);

        var ranks = CollectiveThreads.Run(world, c => Train(spec, Settings(parameters, optimizer, OffloadTier.Cpu, PerRank, StepSchedule.Overlapped), options, c), regionBytes: 1 << 20);

        foreach (var (losses, master, _) in ranks)
        {
            for (int s = 0; s < Steps; s++) Assert.Equal(oneLosses[s], losses[s], 1e-5);
            for (int u = 0; u < master.Length; u++)
                RankAgreement.AssertClose(oneMaster[u], master[u], $"unit {u}");
        }
    }

    [Fact]
    public void Given_TheOverlappedScheduleWithClippingOnRanks_When_Created_Then_ItIsRefusedNamingBothFlags()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        var errors = CollectiveThreads.Run(2, c =>
        {
            var settings = Settings(OffloadTier.Cpu, OffloadTier.Cpu, OffloadTier.Cpu, PerRank, StepSchedule.Overlapped);
            return Assert.Throws<ArgumentException>(() => Trainers.Create(spec, settings, LayerwiseTrainerTests.Options(new GradientClipping(1.0, ClipMode.PerUnit)), ranks: c));
        });
        Assert.All(errors, e => Assert.Contains("--schedule overlapped with --clip-grad-norm", e.Message));
    }

    [Fact]
    public void Given_8bitStateOnTwoRanks_When_CheckpointedAndResumedOnTwoRanks_Then_TheRunContinuesExactlyAsUninterrupted()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options();
        // Sub-groups a whole number of 2,048-value blocks, so the shard's blocks in memory are the checkpoint's.
        TrainingSettings settings = Settings(OffloadTier.Cpu, OffloadTier.Cpu, OffloadTier.Cpu, PerRank) with
        {
            OptimizerState = AiOs.Planner.Optim.OptimizerStateFormat.EightBit,
            SubGroupSize = 10 * 2048,
        };
        double[][] whole = CollectiveThreads.Run(2, c => Segment(spec, settings, options, c, null, Steps, null), regionBytes: 1 << 20);
        string root = Directory.CreateTempSubdirectory("aios-dp-8bit-").FullName;
        try
        {
            CollectiveThreads.Run(2, c => Segment(spec, settings, options, c, null, Steps / 2, root), regionBytes: 1 << 20);
            string checkpoint = Checkpoints.Checkpoint.Latest(root)!;
            double[][] resumed = CollectiveThreads.Run(2, c => Segment(spec, settings, options, c, checkpoint, Steps, null), regionBytes: 1 << 20);
            foreach (double[] losses in resumed)
                for (int s = 0; s < losses.Length; s++) Assert.Equal(whole[0][Steps / 2 + s], losses[s]);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Given_ResidentBf16RanksAccumulatingInFp32_When_Trained_Then_TheyFollowOneRankAndEachRanksSpansAreItsProgramsOperations()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        EngineOptions options = LayerwiseTrainerTests.Options();
        TrainingSettings For(int world) => Settings(OffloadTier.None, OffloadTier.None, OffloadTier.None, 4 / world) with { Precision = Precision.Bf16 };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        (double[] Losses, Simulation.Program.StepProgram Program, int[] OpIds) Run(ICollectives? ranks)
        {
            using var t = new DeviceTrainer(spec, For(ranks?.WorldSize ?? 1), options, ranks: ranks);
            double[] losses = [.. Enumerable.Range(0, Steps).Select(s => t.Step(m => data.Sample(options.Seed, s, m, 2, 32)).Loss)];
            return (losses, t.Program, [.. t.Trace.SpansOf(Steps).Where(s => s.OpId >= 0).Select(s => s.OpId).Order()]);
        }

        var one = Run(null);
        var ranks = CollectiveThreads.Run(2, c => Run(c), regionBytes: 1 << 20);

        foreach (var (losses, program, ops) in ranks)
        {
            for (int s = 0; s < Steps; s++) Assert.Equal(one.Losses[s], losses[s], 2e-3);
            // The all-reduces are operations of the program, executed and traced like the others: one per unit at the
            // accumulation boundary (2 micro-batches here), after the step's whole backward, as the trainer reduces.
            var reduces = program.Ops.Where(o => o.Kind == Simulation.Program.OpKind.ReduceScatter).ToList();
            Assert.Equal(spec.NumLayers + 2, reduces.Count);
            Assert.All(reduces, o => Assert.Equal(1, o.MicroBatch));
            int lastBackward = program.Ops.Last(o => o.Kind == Simulation.Program.OpKind.Backward).Id;
            Assert.All(reduces, o => Assert.True(o.Id > lastBackward, $"all-reduce {o.Id} of {o.Unit} before the last backward {lastBackward}"));
            Assert.Equal(Enumerable.Range(0, program.Ops.Count), ops);
        }
        Assert.DoesNotContain(one.Program.Ops, o => o.Kind == Simulation.Program.OpKind.ReduceScatter);
    }
}
