using AiOs.Planner.Hardware;
using AiOs.Planner.Models;

namespace AiOs.Planner.Settings;

/// <summary>A setting that cannot work, with the command-line flag to change.</summary>
public sealed record SettingsProblem(string Flag, string Message)
{
    /// <summary>The settings-file field (a JSON path such as <c>$.micro_batch</c>) of the same setting, when there is one.</summary>
    public string? Field { get; init; }


    public override string ToString() => $"{Message} (change {Flag})";
}

/// <summary>Settings after <see cref="SettingsRules.ResolveWithNotes"/>, with what it changed or kept and why, one line each.</summary>
public sealed record SettingsResolution(TrainingSettings Settings, IReadOnlyList<string> Notes);

/// <summary>Resolves defaults that depend on other settings and finds impossible combinations.</summary>
public static class SettingsRules
{
    /// <summary>
    /// Fills in what the user left implicit: offloading with no stage picks the stage DeepSpeed needs
    /// (parameters or NVMe → ZeRO-Infinity; optimizer to CPU → ZeRO-2). A stage the user gave is kept.
    /// </summary>
    public static TrainingSettings Resolve(TrainingSettings s, bool stageGiven) => ResolveWithNotes(s, stageGiven).Settings;

    /// <summary>
    /// <see cref="Resolve"/>, with one note per setting it changed or deliberately kept, saying why, for the
    /// commands to print. A given <c>zero3</c> with NVMe offload stays <c>zero3</c>: DeepSpeed runs both as stage 3,
    /// and relabelling what the user typed would hide that nothing else changed.
    /// </summary>
    public static SettingsResolution ResolveWithNotes(TrainingSettings s, bool stageGiven)
    {
        // The engine keeps the fp32 master and moments beside offloaded parameters, in CPU RAM: "optimizer on the GPU"
        // with offloaded parameters is not a placement it has (the aios executor plans them in RAM), so say where they are.
        if (s.Executor == ExecutorKind.Aios && s.ParamOffload != OffloadTier.None && s.OptimizerOffload == OffloadTier.None)
        {
            var kept = ResolveWithNotes(s with { OptimizerOffload = OffloadTier.Cpu }, stageGiven);
            return new(kept.Settings, ["parameters offloaded without --offload-optimizer: the engine keeps the optimizer in CPU RAM beside them (optimizer → cpu)", .. kept.Notes]);
        }
        if (!stageGiven && s.ZeroStage == ZeroStage.None)
        {
            if (s.ParamOffload != OffloadTier.None || s.UsesNvme)
                return new(s with { ZeroStage = ZeroStage.Infinity },
                    [$"no --zero-stage: chose infinity (ZeRO-3), because {(s.ParamOffload != OffloadTier.None ? "parameter offload" : "NVMe offload")} needs DeepSpeed's stage 3"]);
            if (s.OptimizerOffload != OffloadTier.None)
                return new(s with { ZeroStage = ZeroStage.Zero2 },
                    ["no --zero-stage: chose zero2, the lowest stage DeepSpeed offloads the optimizer from that also partitions gradients"]);
        }
        if (s.ZeroStage == ZeroStage.Zero3 && s.UsesNvme)
            return new(s, ["--zero-stage zero3 with NVMe offload: kept zero3 (NVMe offload under ZeRO-3 is what DeepSpeed calls ZeRO-Infinity; both are stage 3)"]);
        return new(s, []);
    }

    /// <summary>
    /// Every problem with <paramref name="s"/> for this model and hardware; empty when it can run: those of
    /// <see cref="SettingsValidator.Problems"/> and <see cref="SettingsValidator.DeepSpeedProblems"/>, the NVMe folder and buffer size, and what the machine limits.
    /// </summary>
    public static IReadOnlyList<SettingsProblem> Check(TrainingSettings s, ModelSpec model, HardwareProfile hardware)
    {
        var problems = new List<SettingsProblem>();
        void Add(string flag, string message) => problems.Add(new SettingsProblem(flag, message));

        problems.AddRange(SettingsValidator.Problems(s, model));
        problems.AddRange(SettingsValidator.DeepSpeedProblems(s));
        problems.AddRange(Memory.MemoryCentricTiling.Problems(s));
        // The CLI refuses this as it reads the flags; every other path (the server's API, settings files) meets it here.
        if (Memory.EngineHeadLoss.Problem(s) is { } head) problems.Add(new SettingsProblem("--head-loss", head) { Field = "$.head_loss" });
        if (CudaGraphRule.Problem(s) is { } graphs) problems.Add(new SettingsProblem("--cuda-graphs", graphs) { Field = "$.cuda_graphs" });
        else if (s.CudaGraphs && !hardware.HasGpu)
            problems.Add(new SettingsProblem("--cuda-graphs", $"--cuda-graphs captures CUDA work and {hardware.Name} has no GPU: drop --cuda-graphs, or plan for a GPU profile") { Field = "$.cuda_graphs" });
        else if (s.CudaGraphs && Simulation.Program.Topology.Of(s, hardware).Ranks is var ranks and > 1)
            problems.Add(new SettingsProblem("--cuda-graphs", $"--cuda-graphs has run on one GPU only (this plan has {ranks} ranks; the graphs beside the ranks' gradient all-reduce are not validated): drop --cuda-graphs, or give --gpus 1 --nodes 1") { Field = "$.cuda_graphs" });
        if (s.OptimizerRamBudget is { Value: > 0 } && s.OptimizerOffload == OffloadTier.Nvme && s.Executor == ExecutorKind.DeepSpeed)
            problems.Add(new SettingsProblem("--optimizer-ram-budget",
                "DeepSpeed keeps the whole optimizer on one tier, so --executor deepspeed cannot price a RAM budget: drop --optimizer-ram-budget (ds-config emits the nearest DeepSpeed equivalent and says so), or use --executor aios") { Field = "$.optimizer_ram_budget" });
        if (s.UsesNvme && string.IsNullOrWhiteSpace(s.NvmePath))
            Add("--nvme-offload-path", "NVMe offload needs a folder for swap files");
        if (Memory.SwapBufferRule.Problem(model, s, s.Executor) is { } buffer) problems.Add(buffer);
        if (s.Executor == ExecutorKind.Aios)
            foreach (string schedule in EngineScheduleRule.Problems(s, Simulation.Program.Topology.Of(s, hardware).Ranks))
                problems.Add(new SettingsProblem("--schedule", schedule) { Field = "$.schedule" });

        // The step simulation keeps operations per layer and micro-batch, and per optimizer sub-group, so its work
        // and memory grow with their counts (10^7 sub-groups took 13 GB and two minutes); bounded counts keep a plan
        // to seconds. The engine runs real micro-steps and is not bound by this.
        long passes = (model.NumLayers + 2L) * Math.Max(1, s.GradAccumulation);
        if (passes > MaxLayerPasses)
            Add("--grad-accumulation", $"{s.GradAccumulation:N0} micro-batches × {model.NumLayers + 2:N0} layers (with embedding and head) is {passes:N0} layer passes per step; the planner simulates at most {MaxLayerPasses:N0}: use at most {MaxLayerPasses / (model.NumLayers + 2L):N0} (a larger --micro-batch keeps the global batch)");
        long share = Simulation.Program.Topology.Of(s, hardware).Share(model.TotalParameters);
        if (s.OptimizerOffload != OffloadTier.None && s.SubGroupSize >= 1 && (share + s.SubGroupSize - 1) / s.SubGroupSize > MaxSubGroups)
            Add("--sub-group-size", $"sub_group_size {s.SubGroupSize:N0} cuts each GPU's {share:N0} parameters into more than {MaxSubGroups:N0} sub-groups; use at least {(share + MaxSubGroups - 1) / MaxSubGroups:N0}");

        int gpus = s.GpusPerNode ?? hardware.GpusPerNode;
        if (hardware.GpusPerNode == 0)
        {
            if (s.GpusPerNode is > 0)
                Add("--gpus", $"{hardware.Name} has no GPU; plan for a GPU profile or leave --gpus out");
        }
        else if (gpus < 1 || gpus > hardware.GpusPerNode)
        {
            Add("--gpus", $"GPUs per node must be 1..{hardware.GpusPerNode} on {hardware.Name} (found {gpus})");
        }
        if (s.Nodes is > 1 && hardware.Network is null)
            Add("--nodes", $"{hardware.Name} describes no node-to-node network; use a profile with a network section for several nodes");
        return problems;
    }

    /// <summary>Most optimizer sub-groups per GPU that a plan simulates (2^17: the 100T model on one GPU at the default size has 10^5).</summary>
    public const long MaxSubGroups = 1 << 17;
    /// <summary>Most layer passes (layers with embedding and head, times micro-batches) that a plan simulates in one step (2^17).</summary>
    public const long MaxLayerPasses = 1 << 17;

    /// <summary>The CLI spelling of a stage.</summary>
    public static string Name(ZeroStage stage) => stage.ToString().ToLowerInvariant();
}
