using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary><c>--master-weights split</c> through settings, the step program's NVMe bytes, the memory model and ds-config (issue 15).</summary>
public class MasterWeightsSettingsTests
{
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static TrainingSettings OnNvme(OptimizerStateFormat format, MasterWeights master) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, GradientOffload = OffloadTier.Cpu,
        NvmePath = "/tmp", MaxInCpu = 0, MicroBatch = 1, SeqLen = 16, SubGroupSize = 5000, BufferCount = 2,
        OptimizerState = format, MasterWeights = master,
    };

    private static (long Read, long Written) NvmeBytes(StepProgram program) =>
        (program.Ops.Where(o => o.Resource == ResourceKind.Nvme && !o.IsWrite).Sum(o => o.Bytes.Value),
         program.Ops.Where(o => o.Resource == ResourceKind.Nvme && o.IsWrite).Sum(o => o.Bytes.Value));

    [Theory]
    [InlineData(OptimizerStateFormat.Fp32)]
    [InlineData(OptimizerStateFormat.EightBit)]
    public void Given_split_masters_on_nvme_When_the_engine_program_is_built_Then_each_swapped_state_is_2_bytes_per_parameter_smaller_and_the_read_brings_the_high_halves(OptimizerStateFormat format)
    {
        var whole = StepScheduler.Build(Tiny, Cpu, OnNvme(format, MasterWeights.Fp32), false, ProgramShape.Engine);
        var split = StepScheduler.Build(Tiny, Cpu, OnNvme(format, MasterWeights.Split), false, ProgramShape.Engine);

        var writes = split.Ops.Where(o => o.Kind == OpKind.OptimizerWrite).ToList();
        Assert.NotEmpty(writes);
        // The object: [remainders 2n | moments]; the read adds the parameters' high halves (2n) from their files, unless the
        // unit's last read of the step is still staged (two staging slots: layers 0 and 1, read last, and the outer block).
        Assert.All(writes, o => Assert.Equal(format.StateBytes(o.SubGroup!.Value.Elements) - Bytes.OfElements(o.SubGroup.Value.Elements, 2), o.Bytes));
        var reads = split.Ops.Where(o => o.Kind == OpKind.OptimizerRead).ToList();
        Assert.All(reads, o => Assert.Equal(format.StateBytes(o.SubGroup!.Value.Elements) - Bytes.OfElements(o.HighHalvesSlot >= 0 ? o.SubGroup.Value.Elements : 0, 2), o.Bytes));
        Assert.Equal([UnitId.Layer(0), UnitId.Layer(1), UnitId.Outer], reads.Where(o => o.HighHalvesSlot >= 0).Select(o => o.Unit).Distinct());
        long staged = reads.Where(o => o.HighHalvesSlot >= 0).Sum(o => o.SubGroup!.Value.Elements);
        var (wholeRead, wholeWritten) = NvmeBytes(whole);
        var (splitRead, splitWritten) = NvmeBytes(split);
        long p = Tiny.TotalParameters;
        Assert.Equal(wholeWritten - 2 * p, splitWritten);
        Assert.Equal(wholeRead - 2 * staged, splitRead);
    }

    [Fact]
    public void Given_gpt2_xl_with_parameters_and_optimizer_on_nvme_When_planned_Then_8bit_with_split_masters_moves_at_most_055_of_fp32_state()
    {
        long Total(OptimizerStateFormat f, MasterWeights m)
        {
            var (read, written) = NvmeBytes(StepScheduler.Build(Gpt2Xl, H200, OnNvme(f, m) with { SeqLen = 1024, MicroBatch = 8, ActivationCheckpointing = true, SubGroupSize = 1_000_000_000 }, false, ProgramShape.Engine));
            return read + written;
        }
        long fp32 = Total(OptimizerStateFormat.Fp32, MasterWeights.Fp32);
        long q8 = Total(OptimizerStateFormat.EightBit, MasterWeights.Fp32);
        long q8Split = Total(OptimizerStateFormat.EightBit, MasterWeights.Split);

        // Per parameter: parameters 6 B; state 24 (fp32), 12 (8-bit), 8 + 2 high halves read (8-bit, split): 18/30 and 16/30.
        Assert.InRange((double)q8 / fp32, 0.59, 0.61);
        Assert.InRange((double)q8Split / fp32, 0.52, 0.55);
        Assert.True(q8Split < q8);
    }

    [Fact]
    public void Given_split_masters_When_the_memory_is_planned_Then_the_nvme_state_is_smaller_and_the_swap_buffers_hold_the_rebuilt_master()
    {
        var whole = Memory.EngineMemory.Plan(Gpt2Xl, H200, OnNvme(OptimizerStateFormat.EightBit, MasterWeights.Fp32) with { SeqLen = 1024 });
        var split = Memory.EngineMemory.Plan(Gpt2Xl, H200, OnNvme(OptimizerStateFormat.EightBit, MasterWeights.Split) with { SeqLen = 1024 });
        Assert.Equal(whole.Nvme.Of("optimizer states") - Bytes.OfElements(Gpt2Xl.TotalParameters, 2), split.Nvme.Of("optimizer states"));
        Bytes Buffers(Memory.MemoryPlan m) => m.CpuPinned.Of("optimizer swap buffers") + m.CpuPageable.Of("optimizer swap buffers");
        Assert.True(Buffers(split) > Buffers(whole));
    }

    [Theory]
    [InlineData("precision")]
    [InlineData("optimizer-cpu")]
    [InlineData("optimizer-device")]
    [InlineData("params-device")]
    [InlineData("delayed")]
    [InlineData("deepspeed")]
    public void Given_split_masters_where_they_cannot_run_When_validated_Then_master_weights_is_named_with_the_fix(string where)
    {
        var ok = OnNvme(OptimizerStateFormat.EightBit, MasterWeights.Split);
        Assert.Empty(SettingsValidator.Problems(ok));
        var bad = where switch
        {
            "precision" => ok with { Precision = Precision.Fp16 },
            "optimizer-cpu" => ok with { OptimizerOffload = OffloadTier.Cpu },
            "optimizer-device" => ok with { OptimizerOffload = OffloadTier.None, GradientOffload = null },
            "params-device" => ok with { ParamOffload = OffloadTier.None },
            "delayed" => ok with { Schedule = StepSchedule.Delayed },
            _ => ok with { Executor = ExecutorKind.DeepSpeed },
        };
        var problem = Assert.Single(SettingsValidator.Problems(bad), p => p.Flag == "--master-weights");
        Assert.Contains("--master-weights fp32", problem.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(SettingsValidator.Problems(bad with { MasterWeights = MasterWeights.Fp32 }), p => p.Flag == "--master-weights");
    }

    [Fact]
    public void Given_split_settings_When_written_as_json_and_read_back_Then_the_field_says_split_and_ds_config_notes_fp32_masters()
    {
        var s = OnNvme(OptimizerStateFormat.EightBit, MasterWeights.Split);
        string json = System.Text.Json.JsonSerializer.Serialize(s, DescriptionJson.Options);
        Assert.Contains("\"master_weights\": \"split\"", json.Replace("\":\"", "\": \""), StringComparison.Ordinal);
        Assert.Equal(s, DescriptionJson.Parse<TrainingSettings>(json, "settings.json"));
        Assert.Equal(MasterWeights.Fp32, DescriptionJson.Parse<TrainingSettings>("{}", "settings.json").MasterWeights);
        var e = Assert.ThrowsAny<Exception>(() => DescriptionJson.Parse<TrainingSettings>("{\"master_weights\": \"bf16\"}", "settings.json"));
        Assert.Contains("bf16", e.Message, StringComparison.Ordinal);

        // DeepSpeed's nearest equivalent keeps whole fp32 masters, and says so.
        var (nearest, notes) = DeepSpeedConfig.NearestEquivalent(Gpt2Xl, s, 1);
        Assert.Equal(MasterWeights.Fp32, nearest.MasterWeights);
        Assert.Contains(notes, n => n.Contains("--master-weights split", StringComparison.Ordinal));
        Assert.DoesNotContain(DeepSpeedConfig.NearestEquivalent(Gpt2Xl, nearest, 1).Notes, n => n.Contains("master-weights", StringComparison.Ordinal));
    }
}
