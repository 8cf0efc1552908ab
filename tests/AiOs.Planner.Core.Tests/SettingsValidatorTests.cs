using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class SettingsValidatorTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");

    public static TheoryData<string, TrainingSettings> OutOfRange() => new()
    {
        { "--zero-stage", new TrainingSettings { ZeroStage = (ZeroStage)7 } },
        { "--offload-params", new TrainingSettings { ParamOffload = (OffloadTier)9 } },
        { "--precision", new TrainingSettings { Precision = (Precision)3 } },
        { "--micro-batch", new TrainingSettings { MicroBatch = 0 } },
        { "--micro-batch", new TrainingSettings { MicroBatch = 1_000_000, SeqLen = 1 } },
        { "--micro-batch", new TrainingSettings { MicroBatch = 65_536, SeqLen = 1024 } },
        { "--seq-len", new TrainingSettings { SeqLen = -1 } },
        { "--grad-accumulation", new TrainingSettings { GradAccumulation = int.MaxValue } },
        { "--buffer-count", new TrainingSettings { BufferCount = 0 } },
        { "--buffer-size", new TrainingSettings { BufferSize = long.MaxValue } },
        { "--max-in-cpu", new TrainingSettings { MaxInCpu = -1 } },
        { "--sub-group-size", new TrainingSettings { SubGroupSize = 0 } },
        { "--prefetch-depth", new TrainingSettings { PrefetchDepth = 1_000_000 } },
        { "--aio-block-size", new TrainingSettings { Aio = new AioSettings { BlockSize = new Bytes(3) } } },
        { "--aio-block-size", new TrainingSettings { Aio = new AioSettings { BlockSize = Bytes.FromKiB(1) } } },
        { "--aio-block-size", new TrainingSettings { Aio = new AioSettings { BlockSize = Bytes.Zero } } },
        { "--aio-block-size", new TrainingSettings { Aio = new AioSettings { BlockSize = Bytes.FromGiB(4) } } },
        { "--aio-queue-depth", new TrainingSettings { Aio = new AioSettings { QueueDepth = 0 } } },
        { "--aio-threads", new TrainingSettings { Aio = new AioSettings { IntraOpParallelism = 100_000 } } },
        { "--nodes", new TrainingSettings { Nodes = 0 } },
        { "--gpus", new TrainingSettings { GpusPerNode = -1 } },
        { "--delayed-warmup-steps", new TrainingSettings { DelayedWarmupSteps = 0 } },
        { "--delayed-warmup-steps", new TrainingSettings { DelayedWarmupSteps = -2 } },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void Given_a_setting_out_of_range_When_validated_Then_the_flag_is_named(string flag, TrainingSettings s)
    {
        var problem = Assert.Single(SettingsValidator.Problems(s));
        Assert.Equal(flag, problem.Flag);
        Assert.StartsWith("$.", problem.Field, StringComparison.Ordinal);

        var e = Assert.Throws<DescriptionException>(() => s.Validated(model: null));
        Assert.Contains(flag, e.Message);
    }

    [Fact]
    public void Given_the_defaults_When_validated_Then_nothing_is_wrong()
    {
        Assert.Empty(SettingsValidator.Problems(new TrainingSettings(), Gpt2));
    }

    [Fact]
    public void Given_a_sequence_beyond_learned_positions_When_validated_with_the_model_Then_seq_len_is_named()
    {
        var s = new TrainingSettings { SeqLen = 4096 };
        Assert.Empty(SettingsValidator.Problems(s));
        Assert.Equal("--seq-len", Assert.Single(SettingsValidator.Problems(s, Gpt2)).Flag);
    }

    [Fact]
    public void Given_a_settings_file_with_bad_values_When_validated_Then_the_file_fields_and_flags_are_named()
    {
        var s = new TrainingSettings { MicroBatch = 0, Aio = new AioSettings { BlockSize = new Bytes(1000), QueueDepth = 0 } };

        var e = Assert.Throws<DescriptionException>(() => s.ValidatedFile("my-settings.json"));

        Assert.Equal("my-settings.json", e.File);
        Assert.Equal("$.micro_batch", e.Field);
        Assert.Contains("$.aio.block_size", e.Message);
        Assert.Contains("$.aio.queue_depth", e.Message);
        Assert.Contains("--aio-queue-depth", e.Message);
    }

    [Fact]
    public void Given_a_settings_file_with_a_numeric_stage_When_read_Then_the_allowed_names_are_listed()
    {
        var e = Assert.Throws<DescriptionException>(() => DescriptionJson.Parse<TrainingSettings>("""{"zero_stage": "7"}""", "s.json"));
        Assert.Contains("zero3", e.Message);
        Assert.Equal("$.zero_stage", e.Field);
    }

    [Fact]
    public void Given_settings_the_engine_runs_but_DeepSpeed_does_not_When_validated_Then_only_the_planner_refuses_them()
    {
        var s = new TrainingSettings { Schedule = StepSchedule.Overlapped };
        Assert.Empty(SettingsValidator.Problems(s, Gpt2));
        Assert.Contains(SettingsValidator.DeepSpeedProblems(s), p => p.Flag == "--schedule");
    }

    [Fact]
    public void Given_no_delayed_warm_up_When_validated_Then_it_is_refused_naming_the_flag_the_field_and_the_fix()
    {
        var s = new TrainingSettings { Schedule = StepSchedule.Delayed, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, DelayedWarmupSteps = 0 };

        var problem = Assert.Single(SettingsValidator.Problems(s, Gpt2));
        Assert.Equal("--delayed-warmup-steps", problem.Flag);
        Assert.Equal("$.delayed_warmup_steps", problem.Field);
        Assert.Contains("--delayed-warmup-steps 1 or more", problem.Message);
        Assert.Empty(SettingsValidator.Problems(s with { DelayedWarmupSteps = 3 }, Gpt2));
    }

    [Fact]
    public void Given_a_settings_file_with_a_delayed_warm_up_When_read_Then_the_snake_case_field_sets_it()
    {
        var s = DescriptionJson.Parse<TrainingSettings>("{\"schedule\": \"delayed\", \"delayed_warmup_steps\": 4}", "settings.json");
        Assert.Equal(4, s.DelayedWarmupSteps);
        Assert.Equal(1, new TrainingSettings().DelayedWarmupSteps);
    }
}
