using AiOs.Planner.Records;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Both executors against the H200 measurements of issue 13 (Data/anchors/h200-executors.json, with provenance). Rows
/// marked "fit" set a profile figure and are regression guards; rows marked "check" set none.
/// </summary>
public class ExecutorAnchorTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static JsonNode Anchors([CallerFilePath] string here = "") =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(here)!, "Data", "anchors", "h200-executors.json")))!;

    public static TheoryData<string, int, double, string> EngineSteps() => Rows("engine_steps");

    public static TheoryData<string, int, double, string> EagerSteps() => Rows("pytorch_eager_steps");

    private static TheoryData<string, int, double, string> Rows(string key)
    {
        var data = new TheoryData<string, int, double, string>();
        foreach (var row in Anchors()[key]!.AsArray())
            data.Add(row!["model"]!.GetValue<string>(), row["micro_batch"]!.GetValue<int>(), row["seconds"]!.GetValue<double>(), row["role"]!.GetValue<string>());
        return data;
    }

    private static TrainingSettings Settings(int microBatch, ExecutorKind executor) =>
        new() { MicroBatch = microBatch, SeqLen = 1024, Precision = Precision.Bf16, Executor = executor };

    [Theory]
    [MemberData(nameof(EngineSteps))]
    public void Given_an_engine_step_measured_on_the_h200_When_the_aios_executor_predicts_it_Then_it_is_within_15_percent(string model, int microBatch, double seconds, string role)
    {
        var step = Simulator.Predict(ModelCatalog.Default.Load(model), Lent, Settings(microBatch, ExecutorKind.Aios));

        Assert.True(Math.Abs(step.Time.Seconds / seconds - 1) <= 0.15, $"{model} mb {microBatch} ({role}): predicted {step.Time}, measured {seconds * 1e3:0.0} ms");
    }

    [Fact]
    public void Given_the_h200_engine_steps_When_the_aios_executor_predicts_them_Then_the_median_error_is_within_10_percent()
    {
        // Issue 13's acceptance: median within 10%, max within 15% (the theory above holds each row to the max).
        var errors = EngineSteps().Select(row =>
        {
            var (model, microBatch, seconds) = ((string)row[0], (int)row[1], (double)row[2]);
            return Math.Abs(Simulator.Predict(ModelCatalog.Default.Load(model), Lent, Settings(microBatch, ExecutorKind.Aios)).Time.Seconds / seconds - 1);
        }).Order().ToArray();
        double median = errors.Length % 2 == 1 ? errors[errors.Length / 2] : (errors[errors.Length / 2 - 1] + errors[errors.Length / 2]) / 2;
        Assert.True(median <= 0.10, $"median |error| {median:P1} over {errors.Length} rows");
    }

    [Theory]
    [MemberData(nameof(EagerSteps))]
    public void Given_a_launch_bound_pytorch_step_When_the_deepspeed_executor_predicts_it_Then_it_is_within_5_percent(string model, int microBatch, double seconds, string role)
    {
        // Before the dispatch floor, micro-batch 1 came out at 15.5 ms (−68%).
        var step = Simulator.Predict(ModelCatalog.Default.Load(model), H200, Settings(microBatch, ExecutorKind.DeepSpeed));

        Assert.True(Math.Abs(step.Time.Seconds / seconds - 1) <= 0.05, $"{model} mb {microBatch} ({role}): predicted {step.Time}, measured {seconds * 1e3:0.0} ms");
    }

    [Fact]
    public void Given_the_resident_gpt2_xl_engine_run_When_planned_for_aios_Then_device_memory_is_within_5_percent_of_the_driver_figure()
    {
        // The row measured the engine before its fused head (full logits at the loss, the peak of a resident step). The plan
        // models today's engine; adding back exactly what the unfused head held beyond today's item must give the old figure.
        var row = Anchors()["engine_memory"]!.AsArray().First(r => r!["tier"]!.GetValue<string>() == "gpu")!;
        var m = ModelCatalog.Default.Load("gpt2-xl");
        var plan = MemoryPlanner.Plan(m, Lent, Settings(8, ExecutorKind.Aios));
        var unfused = EngineHeadLoss.UnfusedBytes(8 * 1024, m.VocabSize, m.HiddenSize, Precision.Bf16);

        Assert.Equal("end of forward (loss)", plan.GpuPeakPhase);
        Assert.InRange((plan.Gpu.Peak + unfused - plan.Gpu.Of("logits and loss")).GB / row["gb"]!.GetValue<double>(), 0.95, 1.05);
    }

    [Theory]
    [InlineData("h200-2026-12-05/call2/g2xl-host-cpu", "h200-1x-calibrated", true)]
    [InlineData("h200-2026-12-05/call2/l3b-host-cpu", "h200-1x-calibrated", true)]
    [InlineData("h200-2026-12-05/call2/l7b-mixed-11g", "h200-1x-calibrated", true)]
    [InlineData("h100-2026-12-05/l13b-8bit-11g", "h100-1x-vm", false)]
    public void Given_an_offloaded_gpu_run_of_todays_engine_When_its_recorded_settings_are_planned_Then_host_memory_is_within_10_percent_of_its_peak_rss(string run, string profile, bool fp32Sums)
    {
        // Issue 14's host target, on the run records committed under docs/validation (settings.json and summary.json as the
        // engine wrote them): gpt2-xl and the 3B shape with parameters and optimizer in RAM, llama-2-7b and -13b with a mixed
        // RAM/NVMe optimizer. No figure of the plan was fitted to these four (checks).
        // fp32Sums: the H200's call 2 ran 01:57–03:18 UTC on 2026-12-05, before the engine kept bf16 host gradients at
        // accumulation 1 (commit 0a87252, 04:47 UTC; the runs' own prediction.json lists "gradients: fp32 per unit; the initial
        // weights are made in them"). Their engine held fp32 sums per unit and no start-up worker arrays: added back exactly.
        var recorded = RecordedRun.Load(Path.Combine(Validation(), run));
        var settings = recorded.Settings!;
        var hw = Planning.GpuMemoryLimit.Apply(ProfileCatalog.Default.Load(profile), new Units.Bytes(recorded.Summary!.GpuMemoryLimitBytes!.Value));
        var plan = MemoryPlanner.Plan(settings.Model, hw, settings.Settings);
        long planned = plan.CpuPeak.Value + (fp32Sums ? Fp32GradientsThen(settings.Model, plan) : 0);

        double ratio = planned / (double)recorded.Summary.PeakResidentBytes;
        Assert.True(Math.Abs(ratio - 1) <= 0.10, $"{run}: planned {new Units.Bytes(planned)}, peak RSS {new Units.Bytes(recorded.Summary.PeakResidentBytes)} ({ratio - 1:+0.0%;-0.0%})");
    }

    [Fact]
    public void Given_the_h200_call2_runs_When_their_own_records_are_read_Then_their_engine_kept_fp32_gradient_sums()
    {
        // The anchor above adds fp32 sums back for these three runs; their prediction.json, written by the planner the run
        // was made with, must say so (a record re-made with today's engine would not, and the flag must then go).
        foreach (string run in new[] { "g2xl-host-cpu", "l3b-host-cpu", "l7b-mixed-11g" })
        {
            var prediction = JsonNode.Parse(File.ReadAllText(Path.Combine(Validation(), "h200-2026-12-05", "call2", run, "prediction.json")))!;
            var gradients = prediction["memory"]!["breakdown"]!["cpu_pinned"]!.AsArray().Single(i => i!["name"]!.GetValue<string>() == "gradients")!;
            Assert.StartsWith("fp32 per unit", gradients["note"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    private static string Validation([CallerFilePath] string here = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(here)!, "..", "..", "docs", "validation"));

    [Fact]
    public void Given_the_offloaded_gpt2_engine_run_on_the_ci_cpu_When_planned_for_aios_Then_host_memory_is_within_5_percent_of_its_rss()
    {
        var row = Anchors()["engine_memory"]!.AsArray().First(r => r!["tier"]!.GetValue<string>() == "host-cpu")!;
        var s = new TrainingSettings { MicroBatch = 1, SeqLen = 128, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity };
        var gpt2 = ModelCatalog.Default.Load("gpt2");
        var plan = MemoryPlanner.Plan(gpt2, ProfileCatalog.Default.Load("ci-2core-24gb"), s);

        Assert.InRange((plan.CpuPeak.Value + Fp32GradientsThen(gpt2, plan)) / 1e9 / row["gb"]!.GetValue<double>(), 0.95, 1.05);
    }

    /// <summary>
    /// Host bytes these rows' engine held beyond today's plan: it kept an fp32 sum per unit also at accumulation 1 (and made
    /// the initial weights in them), where today's keeps bf16 gradients and makes them in worker arrays. Replace the rows with
    /// runs of today's engine.
    /// </summary>
    private static long Fp32GradientsThen(ModelSpec m, MemoryPlan plan)
    {
        static long Page(long b) => (b + 4095) / 4096 * 4096;
        long fp32 = m.NumLayers * Page(4 * m.LayerParameters) + Page(4 * (m.EmbeddingParameters + m.HeadParameters));
        long now = (plan.CpuPinned.Of("gradients") + plan.CpuPageable.Of("gradients") + plan.CpuPageable.Of("initial values in flight")).Value;
        return fp32 - now;
    }

    [Fact]
    public void Given_the_same_settings_When_priced_for_each_executor_Then_the_engine_is_faster_and_smaller_than_pytorch_eager()
    {
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var aios = Simulator.Predict(model, Lent, Settings(8, ExecutorKind.Aios));
        var deepSpeed = Simulator.Predict(model, Lent, Settings(8, ExecutorKind.DeepSpeed));

        Assert.True(aios.Time < deepSpeed.Time, $"aios {aios.Time}, deepspeed {deepSpeed.Time}");
        Assert.True(MemoryPlanner.Plan(model, Lent, Settings(8, ExecutorKind.Aios)).Gpu.Peak < MemoryPlanner.Plan(model, Lent, Settings(8, ExecutorKind.DeepSpeed)).Gpu.Peak);
    }
}
