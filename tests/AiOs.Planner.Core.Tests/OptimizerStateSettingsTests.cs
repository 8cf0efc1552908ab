using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Planning;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>--optimizer-state through settings, the memory model, the step program, the simulator and ds-config (issue 15).</summary>
public class OptimizerStateSettingsTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");

    private static TrainingSettings Offloaded(OffloadTier tier, OptimizerStateFormat format, ExecutorKind executor = ExecutorKind.Aios) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = tier, OptimizerOffload = tier, NvmePath = tier == OffloadTier.Nvme ? "/tmp" : null,
        MicroBatch = 1, SeqLen = 128, SubGroupSize = 1_000_000, BufferCount = 2, OptimizerState = format, Executor = executor,
    };

    private static Bytes Item(Memory.MemoryPlan memory, OffloadTier tier) => tier == OffloadTier.Nvme
        ? memory.Nvme.Of("optimizer states")
        : memory.CpuPinned.Of("optimizer states") + memory.CpuPageable.Of("optimizer states");

    [Theory]
    [InlineData(OffloadTier.Nvme, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Nvme, ExecutorKind.DeepSpeed)]
    [InlineData(OffloadTier.Cpu, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Cpu, ExecutorKind.DeepSpeed)]
    public void Given_8bit_state_When_planned_Then_the_optimizer_states_take_about_half_the_fp32_bytes(OffloadTier tier, ExecutorKind executor)
    {
        var fp32 = TrainingPlanner.Plan(Gpt2Xl, H200, Offloaded(tier, OptimizerStateFormat.Fp32, executor), new PlanOptions { Simulate = false });
        var q8 = TrainingPlanner.Plan(Gpt2Xl, H200, Offloaded(tier, OptimizerStateFormat.EightBit, executor), new PlanOptions { Simulate = false });

        Bytes full = Item(fp32.Memory, tier), half = Item(q8.Memory, tier);
        Assert.True(full.Value > 0);
        double ratio = (double)half.Value / full.Value;
        // fp32 master (4) + two 1-byte moments + one fp32 scale per 2,048 values of each: 6.004 / 12.
        Assert.InRange(ratio, 0.50, 0.501);
    }

    [Fact]
    public void Given_8bit_state_on_nvme_When_the_engine_program_is_built_Then_each_sub_group_swaps_its_exact_8bit_bytes()
    {
        var s = Offloaded(OffloadTier.Nvme, OptimizerStateFormat.EightBit) with { SeqLen = 16, SubGroupSize = 5000 };
        var program = StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine);
        var fp32 = StepScheduler.Build(Tiny, Cpu, s with { OptimizerState = OptimizerStateFormat.Fp32 }, false, ProgramShape.Engine);
        var writes = program.Ops.Where(o => o.Kind == OpKind.OptimizerWrite).ToList();

        Assert.NotEmpty(writes);
        // [master fp32 | m codes | v codes | one fp32 scale per 2,048-value block of each moment], block-aligned per sub-group.
        Assert.All(writes, o => Assert.Equal(OptimizerStateFormat.EightBit.StateBytes(o.SubGroup!.Value.Elements), o.Bytes));
        // Reads bring the state and, gradients being on NVMe too, the fp32 gradient.
        Assert.All(program.Ops.Where(o => o.Kind == OpKind.OptimizerRead),
            o => Assert.Equal(OptimizerStateFormat.EightBit.StateBytes(o.SubGroup!.Value.Elements) + Bytes.OfElements(o.SubGroup.Value.Elements, 4), o.Bytes));
        long q8 = writes.Sum(o => o.Bytes.Value), full = fp32.Ops.Where(o => o.Kind == OpKind.OptimizerWrite).Sum(o => o.Bytes.Value);
        Assert.InRange((double)q8 / full, 0.50, 0.51);
    }

    [Fact]
    public void Given_8bit_state_When_the_cpu_update_is_costed_Then_it_uses_the_8bit_rate_or_the_default_ratio()
    {
        var s = Offloaded(OffloadTier.Cpu, OptimizerStateFormat.EightBit) with { SeqLen = 16 };
        var program = StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine);
        var step = program.Ops.First(o => o.Kind == OpKind.OptimizerStep);
        SimDuration Time(HardwareProfile hw, TrainingSettings settings) => Simulator.Costs(program, hw, settings).Duration(step, Tiny.HiddenSize);

        double fp32Rate = Cpu.Cpu.AdamParamsPerS.Value;
        Assert.Equal(SimDuration.FromSeconds(step.Parameters / fp32Rate), Time(Cpu, s with { OptimizerState = OptimizerStateFormat.Fp32 }));
        Assert.Equal(SimDuration.FromSeconds(step.Parameters / (fp32Rate * CpuSpec.DefaultAdam8Ratio)), Time(Cpu, s));
        var measured = Cpu with { Cpu = Cpu.Cpu with { Adam8ParamsPerS = new Figure(fp32Rate * 2) } };
        Assert.Equal(SimDuration.FromSeconds(step.Parameters / (fp32Rate * 2)), Time(measured, s));
        Assert.Contains("docs/benchmarks.md", Cpu.Cpu.Adam8Rate.Provenance!.Method, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_profile_with_an_8bit_rate_When_read_Then_it_is_kept_and_checked()
    {
        var node = System.Text.Json.JsonSerializer.SerializeToNode(Cpu, DescriptionJson.Options)!;
        node["cpu"]!["adam8_params_per_s"] = 123e6;
        var profile = ProfileCatalog.Parse(node.ToJsonString(), "test.json");
        Assert.Equal(123e6, profile.Cpu.Adam8Rate.Value);

        node["cpu"]!["adam8_params_per_s"] = -1;
        var e = Assert.ThrowsAny<Exception>(() => ProfileCatalog.Parse(node.ToJsonString(), "test.json"));
        Assert.Contains("adam8_params_per_s", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_8bit_state_without_an_offloaded_optimizer_for_deepspeed_When_validated_Then_the_problem_names_the_flag_and_the_fix()
    {
        // The aios engine keeps 8-bit moments on the device (resident runs); DeepSpeed's GPU optimizer cannot.
        Assert.Empty(SettingsValidator.Problems(new TrainingSettings { OptimizerState = OptimizerStateFormat.EightBit }));
        var problems = SettingsValidator.Problems(new TrainingSettings { OptimizerState = OptimizerStateFormat.EightBit, Executor = ExecutorKind.DeepSpeed });
        var p = Assert.Single(problems);
        Assert.Equal("--optimizer-state", p.Flag);
        Assert.Equal("$.optimizer_state", p.Field);
        Assert.Contains("--optimizer-state fp32", p.Message, StringComparison.Ordinal);

        Assert.Empty(SettingsValidator.Problems(new TrainingSettings { OptimizerState = OptimizerStateFormat.EightBit, ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu }));
        Assert.Contains(SettingsValidator.Problems(new TrainingSettings { OptimizerState = (OptimizerStateFormat)7, OptimizerOffload = OffloadTier.Cpu }), q => q.Flag == "--optimizer-state");
    }

    [Fact]
    public void Given_8bit_settings_When_written_as_json_and_read_back_Then_the_field_says_8bit_and_a_bad_value_is_named()
    {
        var s = new TrainingSettings { OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Zero2, OptimizerState = OptimizerStateFormat.EightBit };
        string json = System.Text.Json.JsonSerializer.Serialize(s, DescriptionJson.Options);
        Assert.Contains("\"optimizer_state\": \"8bit\"", json.Replace("\":\"", "\": \""), StringComparison.Ordinal);
        Assert.Equal(s, DescriptionJson.Parse<TrainingSettings>(json, "settings.json"));
        Assert.Equal(OptimizerStateFormat.Fp32, DescriptionJson.Parse<TrainingSettings>("{}", "settings.json").OptimizerState);

        var e = Assert.ThrowsAny<Exception>(() => DescriptionJson.Parse<TrainingSettings>("{\"optimizer_state\": \"4bit\"}", "settings.json"));
        Assert.Contains("4bit", e.Message, StringComparison.Ordinal);
        Assert.Contains("fp32 or 8bit", e.Message, StringComparison.Ordinal);

        var record = new RunSettingsRecord { Model = Tiny, Settings = s };
        Assert.Contains("8bit", System.Text.Json.JsonSerializer.Serialize(record, DescriptionJson.Options), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_8bit_settings_When_a_deepspeed_config_is_built_Then_a_note_says_it_keeps_fp32_state()
    {
        var q8 = Offloaded(OffloadTier.Nvme, OptimizerStateFormat.EightBit);
        var note = Assert.Single(DeepSpeedConfig.Notes(q8));
        Assert.Contains("fp32", note, StringComparison.Ordinal);
        Assert.Empty(DeepSpeedConfig.Notes(q8 with { OptimizerState = OptimizerStateFormat.Fp32 }));
        // The config itself is DeepSpeed's fp32 one: the same as for fp32 settings.
        Assert.Equal(DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(Gpt2Xl, q8 with { OptimizerState = OptimizerStateFormat.Fp32 }, 1, 1)),
            DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(Gpt2Xl, q8, 1, 1)));
    }
}
