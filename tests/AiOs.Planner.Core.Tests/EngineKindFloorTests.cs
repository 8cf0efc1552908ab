using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's dispatch floors per layer kind: a Llama layer (RMSNorm, rotary, SwiGLU) launches more kernels than
/// GPT-2's, so its launch-bound steps are priced with its own kind's floors when the profile has them, and the plan
/// says so when it has not.
/// </summary>
public class EngineKindFloorTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly ModelSpec TinyLlama = ModelCatalog.Default.Load("tiny-llama");

    /// <summary>A launch-bound resident step: one short sequence.</summary>
    private static readonly TrainingSettings Small = new() { MicroBatch = 1, SeqLen = 16, Precision = Precision.Bf16, Executor = ExecutorKind.Aios };

    private static HardwareProfile WithKernels(Func<EngineKernels, EngineKernels> change) =>
        Lent with { Gpu = Lent.Gpu! with { EngineKernels = change(Lent.Gpu!.EngineKernels!) } };

    private static LayerKindFloors Floors(string kind, double forward, double autograd, double backward) => new()
    {
        Kind = kind,
        ForwardUs = Figure.Measured(forward, "2026-12-06", "test"),
        AutogradUs = Figure.Measured(autograd, "2026-12-06", "test"),
        BackwardUs = Figure.Measured(backward, "2026-12-06", "test"),
    };

    [Fact]
    public void Given_the_bundled_families_When_their_layer_kinds_are_taken_Then_llama_2_llama_3_and_qwen2_differ_from_gpt2_and_each_other_and_gpt2_xl_matches_gpt2()
    {
        string gpt2 = EngineLayerKind.Of(Gpt2);
        string kinds(string name) => EngineLayerKind.Of(ModelCatalog.Default.Load(name));

        string[] others = [kinds("llama-2-7b"), kinds("llama-3-8b"), kinds("qwen2-7b")];

        Assert.Equal(4, others.Append(gpt2).Distinct().Count());
        Assert.Equal(gpt2, kinds("gpt2-xl"));
        Assert.Contains("gqa", others[1]);
        Assert.Contains("qkv_bias", others[2]);
    }

    [Fact]
    public void Given_models_gpt2_json_When_its_kind_is_taken_Then_it_is_the_kind_legacy_profiles_floors_belong_to()
    {
        Assert.Equal(EngineLayerKind.Gpt2, EngineLayerKind.Of(Gpt2));
        Assert.Equal(EngineLayerKind.Gpt2, Lent.Gpu!.EngineKernels!.MainFloorKind);
    }

    [Fact]
    public void Given_kind_floors_for_llama_above_gpt2s_When_a_launch_bound_step_is_predicted_Then_llama_costs_more_and_gpt2_is_unchanged()
    {
        var main = Lent.Gpu!.EngineKernels!;
        string llama = EngineLayerKind.Of(TinyLlama);
        // Floors well above the main ones (and the work of a 64-wide layer on one short sequence).
        var measured = WithKernels(k => k with { KindFloors = [Floors(llama, 3 * main.LayerLaunchFloorUs.Value + 500, 3 * (main.AutogradLaunchFloor.Seconds * 1e6) + 500, 3 * (main.BackwardLaunchFloor.Seconds * 1e6) + 500)] });

        var llamaBefore = Simulator.Predict(TinyLlama, Lent, Small).Time;
        var llamaAfter = Simulator.Predict(TinyLlama, measured, Small).Time;
        var gpt2Before = Simulator.Predict(Gpt2, Lent, Small).Time;
        var gpt2After = Simulator.Predict(Gpt2, measured, Small).Time;

        // Each of the two layers (and the head) pays at least the extra autograd and backward floors.
        Assert.True(llamaAfter - llamaBefore >= SimDuration.FromMicroseconds(2 * (2 * (main.AutogradLaunchFloor.Seconds * 1e6) + 500)),
            $"tiny-llama's step went from {llamaBefore} to {llamaAfter} with its own floors three times the main ones");
        Assert.Equal(gpt2Before, gpt2After);
    }

    [Fact]
    public void Given_kernels_measured_on_the_llama_kind_When_floors_are_asked_for_Then_llama_gets_the_main_ones_and_gpt2_its_entry_or_the_main_ones_unmeasured()
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        var kernels = Lent.Gpu!.EngineKernels! with { FloorKind = llama, LayerLaunchFloorUs = 400, AutogradLaunchFloorUs = 500, BackwardLaunchFloorUs = 900 };

        var ownKind = kernels.FloorsFor(TinyLlama);
        var other = kernels.FloorsFor(Gpt2);
        var withEntry = (kernels with { KindFloors = [Floors(EngineLayerKind.Gpt2, 200, 300, 700)] }).FloorsFor(Gpt2);

        Assert.True(ownKind.Measured);
        Assert.Equal(SimDuration.FromMicroseconds(500), ownKind.Autograd);
        Assert.False(other.Measured);
        Assert.Equal(SimDuration.FromMicroseconds(900), other.Backward);
        Assert.True(withEntry.Measured);
        Assert.Equal((SimDuration.FromMicroseconds(200), SimDuration.FromMicroseconds(300), SimDuration.FromMicroseconds(700)), (withEntry.Forward, withEntry.Autograd, withEntry.Backward));
    }

    [Fact]
    public void Given_a_profile_with_kind_floors_When_written_and_read_back_Then_the_kind_and_each_floor_with_its_provenance_survive()
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        var profile = WithKernels(k => k with { FloorKind = EngineLayerKind.Gpt2, KindFloors = [Floors(llama, 317, 427, 936)] });

        string json = System.Text.Json.JsonSerializer.Serialize(profile, DescriptionJson.Options);
        var back = ProfileCatalog.Parse(json, "round-trip").Gpu!.EngineKernels!;

        Assert.Contains("\"kind_floors\"", json);
        Assert.Contains("\"floor_kind\"", json);
        Assert.Equal(EngineLayerKind.Gpt2, back.FloorKind);
        var entry = Assert.Single(back.KindFloors!);
        Assert.Equal(llama, entry.Kind);
        Assert.Equal((317.0, 427.0, 936.0), (entry.ForwardUs.Value, entry.AutogradUs.Value, entry.BackwardUs.Value));
        Assert.Equal("2026-12-06", entry.BackwardUs.Provenance!.Date);
        Assert.Equal(SimDuration.FromMicroseconds(427), back.FloorsFor(TinyLlama).Autograd);
    }

    [Fact]
    public void Given_the_bundled_gpu_profiles_When_loaded_Then_every_bundled_models_layer_kind_has_floors_and_they_round_trip()
    {
        var withKernels = ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).Where(p => p.Gpu?.EngineKernels is not null).ToList();
        var models = ModelCatalog.Default.Names().Select(ModelCatalog.Default.Load).ToList();

        Assert.NotEmpty(withKernels);
        Assert.All(withKernels, p =>
        {
            var k = p.Gpu!.EngineKernels!;
            foreach (var m in models) Assert.True(k.FloorsFor(m).Measured, $"{p.Name} has no floors for {m.Name}'s layers ({EngineLayerKind.Of(m)})");
            string json = System.Text.Json.JsonSerializer.Serialize(p, DescriptionJson.WriteOptions);
            var back = DescriptionJson.Parse<HardwareProfile>(json, p.Name).Gpu!.EngineKernels!;
            Assert.Equal(k.FloorKind, back.FloorKind);
            Assert.Equal(k.KindFloors!.Select(f => (f.Kind, f.ForwardUs.Value, f.AutogradUs.Value, f.BackwardUs.Value)),
                back.KindFloors!.Select(f => (f.Kind, f.ForwardUs.Value, f.AutogradUs.Value, f.BackwardUs.Value)));
        });
    }

    [Theory]
    [InlineData("duplicate")]
    [InlineData("main")]
    [InlineData("negative")]
    public void Given_bad_kind_floors_When_the_profile_is_validated_Then_it_is_refused_naming_the_field(string problem)
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        IReadOnlyList<LayerKindFloors> floors = problem switch
        {
            "duplicate" => [Floors(llama, 1, 2, 3), Floors(llama, 1, 2, 3)],
            "main" => [Floors(EngineLayerKind.Gpt2, 1, 2, 3)],
            _ => [Floors(llama, 1, -2, 3)],
        };
        var profile = WithKernels(k => k with { KindFloors = floors });

        var e = Assert.Throws<DescriptionException>(() => profile.Validated("test"));

        Assert.Contains(problem == "negative" ? "kind_floors[0].autograd_us" : "kind_floors[", e.Message);
    }

    [Fact]
    public void Given_a_model_whose_kind_has_no_floors_When_planned_for_the_aios_executor_on_a_gpu_Then_the_plan_notes_it_and_names_calibrate_gpu()
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        var measured = WithKernels(k => k with { KindFloors = [Floors(llama, 300, 400, 900)] });

        var unmeasured = TrainingPlanner.Plan(TinyLlama, WithKernels(k => k with { KindFloors = null }), Small).Notes;
        var withFloors = TrainingPlanner.Plan(TinyLlama, measured, Small).Notes;
        var gpt2 = TrainingPlanner.Plan(Gpt2, Lent, Small).Notes;
        var deepSpeed = TrainingPlanner.Plan(TinyLlama, Lent, Small with { Executor = ExecutorKind.DeepSpeed }).Notes;

        var note = Assert.Single(unmeasured, n => n.Contains("dispatch floors"));
        Assert.Contains("aios calibrate-gpu --family tiny-llama", note);
        Assert.Contains(llama, note);
        Assert.DoesNotContain(withFloors, n => n.Contains("dispatch floors"));
        // gpt2's floors are measured: no floors note (a small launch-bound step may carry the CUDA-graphs note, CudaGraphRuleTests).
        Assert.DoesNotContain(gpt2, n => !n.Contains("--cuda-graphs"));
        Assert.Empty(deepSpeed);
    }

    [Fact]
    public void Given_a_work_fit_of_another_layer_kind_When_planned_for_the_aios_executor_Then_the_plan_notes_it_and_a_fit_of_the_model_s_kind_does_not()
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        var llamaFit = WithKernels(k => k with { FloorKind = llama, KindFloors = null });

        var llamaOnGpt2Fit = TrainingPlanner.Plan(TinyLlama, Lent, Small).Notes;
        var llamaOnLlamaFit = TrainingPlanner.Plan(TinyLlama, llamaFit, Small).Notes;
        var gpt2OnLlamaFit = TrainingPlanner.Plan(Gpt2, llamaFit, Small).Notes;
        var deepSpeed = TrainingPlanner.Plan(TinyLlama, Lent, Small with { Executor = ExecutorKind.DeepSpeed }).Notes;

        var note = Assert.Single(llamaOnGpt2Fit, n => n.Contains("layer-work fit"));
        Assert.Contains("aios calibrate-gpu --floor-families tiny-llama", note);
        Assert.Contains(llama, note);
        Assert.DoesNotContain(llamaOnLlamaFit, n => n.Contains("layer-work fit"));
        var withRatios = WithKernels(k => k with { KindFloors = [Floors(llama, 300, 400, 900) with { ForwardWorkRatio = 1.2, BackwardWorkRatio = 1.1 }] });
        Assert.DoesNotContain(TrainingPlanner.Plan(TinyLlama, withRatios, Small).Notes, n => n.Contains("layer-work fit"));
        Assert.Contains(gpt2OnLlamaFit, n => n.Contains("layer-work fit") && n.Contains("--family gpt2"));
        Assert.Empty(deepSpeed);
    }

    [Fact]
    public void Given_work_ratios_marked_estimates_When_planned_Then_the_note_gives_them_and_the_command_and_measured_ones_give_no_note()
    {
        string llama = EngineLayerKind.Of(TinyLlama);
        Figure Estimate(double v) => new(v, new Provenance(FigureSource.Estimate, "2026-12-06", "read off another machine's steps"));
        var estimated = WithKernels(k => k with { KindFloors = [Floors(llama, 300, 400, 900) with { ForwardWorkRatio = Estimate(1.21), BackwardWorkRatio = Estimate(1.44) }] });
        var measured = WithKernels(k => k with { KindFloors = [Floors(llama, 300, 400, 900) with
            { ForwardWorkRatio = Figure.Measured(1.21, "2026-12-06", "calibrate-gpu"), BackwardWorkRatio = Figure.Measured(1.44, "2026-12-06", "calibrate-gpu") }] });

        var note = Assert.Single(TrainingPlanner.Plan(TinyLlama, estimated, Small).Notes, n => n.Contains("layer-work fit"));
        Assert.Contains("estimated", note);
        Assert.Contains("×1.21", note);
        Assert.Contains("×1.44", note);
        Assert.Contains("aios calibrate-gpu --floor-families tiny-llama", note);
        Assert.DoesNotContain(TrainingPlanner.Plan(TinyLlama, measured, Small).Notes, n => n.Contains("layer-work fit"));
        // The bundled H200 profile carries an H100 VM's measured ratios (the twenty-third session's) as estimates, so a plan
        // there both prices and names them; the H100 VM's own profile holds them measured (the twenty-third session's VM,
        // after the layers' bias kernels went), and its plans say nothing.
        Assert.Contains(TrainingPlanner.Plan(TinyLlama, Lent, Small).Notes, n => n.Contains("layer-work fit") && n.Contains("estimated"));
        var lentWork = Lent.Gpu!.EngineKernels!.WorkRatiosFor(TinyLlama);
        Assert.Equal((1.5791, 1.5815, 3.9102, 3.5553), (lentWork.Forward, lentWork.Backward, lentWork.ForwardElementwise, lentWork.BackwardElementwise));
        var vm = ProfileCatalog.Default.Load("h100-1x-vm");
        var vmWork = vm.Gpu!.EngineKernels!.WorkRatiosFor(TinyLlama);
        Assert.Equal((1.5791, 1.5815), (vmWork.Forward, vmWork.Backward));
        // Its element-wise ratios (refitted 2026-12-07) price the kind where present.
        Assert.True(vmWork.ForwardElementwise > 1 && vmWork.BackwardElementwise > 1);
        Assert.DoesNotContain(TrainingPlanner.Plan(TinyLlama, vm, Small).Notes, n => n.Contains("layer-work fit"));
    }

    [Fact]
    public void Given_work_ratios_for_the_llama_kind_When_a_work_bound_step_is_priced_Then_its_layers_cost_that_much_more_and_its_head_and_gpt2_do_not()
    {
        var llama2 = ModelCatalog.Default.Load("llama-2-7b") with { NumLayers = 2 };
        string kind = EngineLayerKind.Of(llama2);
        var s = new TrainingSettings { MicroBatch = 4, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios };
        var plain = WithKernels(k => k with { KindFloors = [Floors(kind, 300, 400, 900)] });
        var slower = WithKernels(k => k with { KindFloors = [Floors(kind, 300, 400, 900) with { ForwardWorkRatio = 1.5, BackwardWorkRatio = 2 }] });
        var program = StepScheduler.Build(llama2, plain, s, false, ProgramShape.Engine);
        var a = Simulator.Costs(program, plain, s);
        var b = Simulator.Costs(program, slower, s);

        var layerForward = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer);
        var layerBackward = program.Ops.First(o => o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Layer);
        var head = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind != UnitKind.Layer && o.Flops > 0);
        Assert.Equal(1.5 * a.Duration(layerForward, llama2.HiddenSize).Seconds, b.Duration(layerForward, llama2.HiddenSize).Seconds, 6);
        // The backward's work doubles; its gradients' landing (a streaming pass, ResidentAccumulationTests) is no layer work.
        double landing = layerBackward.SumBytes / (plain.Gpu!.EngineKernels!.OptimizerGbps!.Value * 1e9);
        Assert.Equal(2 * (a.Duration(layerBackward, llama2.HiddenSize).Seconds - landing), b.Duration(layerBackward, llama2.HiddenSize).Seconds - landing, 6);
        Assert.Equal(a.Duration(head, llama2.HiddenSize), b.Duration(head, llama2.HiddenSize));
        // The main kind (gpt2 here) is never scaled by another kind's ratios.
        var gpt2 = ModelCatalog.Default.Load("gpt2") with { NumLayers = 2 };
        var gp = StepScheduler.Build(gpt2, plain, s, false, ProgramShape.Engine);
        var op = gp.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer);
        Assert.Equal(Simulator.Costs(gp, plain, s).Duration(op, gpt2.HiddenSize), Simulator.Costs(gp, slower, s).Duration(op, gpt2.HiddenSize));
    }

    [Fact]
    public void Given_a_work_ratio_out_of_range_When_the_profile_is_validated_Then_it_names_the_field()
    {
        var bad = WithKernels(k => k with { KindFloors = [Floors("rmsnorm/rope/swiglu/no_bias/mha/no_dropout", 300, 400, 900) with { ForwardWorkRatio = 50 }] });
        var e = Assert.Throws<DescriptionException>(() => bad.Validated("test.json"));
        Assert.Contains("forward_work_ratio", e.Message);
    }
}
