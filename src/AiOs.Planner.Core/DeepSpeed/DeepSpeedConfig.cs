using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;

namespace AiOs.Planner.DeepSpeed;

/// <summary>
/// Writes a <c>ds_config.json</c> for the chosen settings with today's keys: <c>aio</c> at top level with
/// <c>intra_op_parallelism</c> (the old <c>thread_count</c> is ignored by DeepSpeed), <c>offload_param</c>
/// and <c>offload_optimizer</c> inside <c>zero_optimization</c>, batch sizes that multiply out.
/// </summary>
public static class DeepSpeedConfig
{
    /// <summary>The config as a JSON object, ready to write.</summary>
    public static JsonObject Build(ModelSpec model, TrainingSettings s, int gpusPerNode, int nodes, DeepSpeedOptimizer? optimizer = null)
    {
        optimizer ??= new DeepSpeedOptimizer();
        int world = Math.Max(1, gpusPerNode) * Math.Max(1, nodes);
        var config = new JsonObject
        {
            ["train_batch_size"] = (long)s.MicroBatch * s.GradAccumulation * world,
            ["train_micro_batch_size_per_gpu"] = s.MicroBatch,
            ["gradient_accumulation_steps"] = s.GradAccumulation,
            ["gradient_clipping"] = optimizer.GradientClipping,
            ["steps_per_print"] = 10,
            ["wall_clock_breakdown"] = false,
            ["optimizer"] = new JsonObject
            {
                ["type"] = "AdamW",
                ["params"] = new JsonObject
                {
                    ["lr"] = optimizer.Schedule.BaseLearningRate,
                    ["betas"] = new JsonArray(optimizer.Beta1, optimizer.Beta2),
                    ["eps"] = optimizer.Epsilon,
                    ["weight_decay"] = optimizer.WeightDecay,
                },
            },
        };
        switch (s.Precision)
        {
            case Precision.Bf16:
                config["bf16"] = new JsonObject { ["enabled"] = true };
                break;
            case Precision.Fp16:
                config["fp16"] = new JsonObject
                {
                    ["enabled"] = true,
                    ["loss_scale"] = 0,
                    ["initial_scale_power"] = 16,
                    ["loss_scale_window"] = 1000,
                    ["hysteresis"] = 2,
                    ["min_loss_scale"] = 1,
                };
                break;
        }
        if (Scheduler(optimizer.Schedule) is { } scheduler) config["scheduler"] = scheduler;
        config["zero_optimization"] = Zero(model, s);
        if (s.UsesNvme) config["aio"] = Aio(s.Aio);
        // Checkpointing itself is the model's (Megatron's or Hugging Face's); this block is where DeepSpeed's checkpoint
        // function takes cpu_checkpointing from. Tiling has no config key: it is deepspeed.zero.TiledLinear in the model.
        if (s.ActivationCheckpointing)
            config["activation_checkpointing"] = new JsonObject
            {
                ["partition_activations"] = false,
                ["cpu_checkpointing"] = s.ActivationOffload == OffloadTier.Cpu,
                ["contiguous_memory_optimization"] = false,
                ["synchronize_checkpoint_boundary"] = false,
            };
        return config;
    }

    private const string CudaGraphsNote =
        "DeepSpeed's ZeRO training replays no CUDA graphs: the config has no equivalent of --cuda-graphs, which runs only in `aios train`.";

    /// <summary>
    /// Settings of <paramref name="s"/> the config cannot express, each a sentence saying what the config does
    /// instead, for ds-config and tune --out to print beside it.
    /// </summary>
    public static IReadOnlyList<string> Notes(TrainingSettings s)
    {
        var notes = new List<string>();
        if (s.OptimizerState == Optim.OptimizerStateFormat.EightBit)
            notes.Add("DeepSpeed's offloaded optimizer (DeepSpeedCPUAdam and its NVMe swapper) has no 8-bit state: the config keeps fp32 optimizer " +
                      "state (12 bytes per parameter, about twice the 8-bit plan's); --optimizer-state 8bit runs only in `aios train`.");
        if (s.TilingFactor > 1)
            notes.Add($"--tiling-factor {s.TilingFactor}: DeepSpeed has no config key for memory-centric tiling; the config emits nothing for it. " +
                      $"Replace the wide linear layers with deepspeed.zero.TiledLinear (in_splits/out_splits giving {s.TilingFactor} tiles) in the model code.");
        if (s.Schedule == StepSchedule.Overlapped)
            notes.Add("DeepSpeed runs the optimizer after backward; the overlapped schedule is the aios engine's and is not in the config.");
        // ZeRO-Offload's DPU has no ds_config key for ZeRO-3 offload (ZenFlow's overlap_step is a ZeRO-1/2 option): the nearest is the serial schedule.
        if (s.CudaGraphs)
            notes.Add(CudaGraphsNote);
        if (s.Schedule == StepSchedule.Delayed)
            notes.Add("DeepSpeed has no key for the delayed (one-step stale) update under ZeRO-3 offload; the config runs the optimizer after backward, as --schedule deepspeed, and its steps are not stale.");
        return notes;
    }

    /// <summary>
    /// The settings DeepSpeed can run that come nearest to <paramref name="s"/>, with one note per thing DeepSpeed cannot
    /// express. An optimizer RAM budget (<see cref="TrainingSettings.OptimizerRamBudget"/>) splits the optimizer between RAM
    /// and NVMe; DeepSpeed keeps it on one tier: all in CPU RAM when the budget holds this process's whole optimizer state,
    /// otherwise all on NVMe (the budget's RAM then unused). <c>offload_param.max_in_cpu</c> is passed through, with a note.
    /// </summary>
    public static (TrainingSettings Settings, IReadOnlyList<string> Notes) NearestEquivalent(ModelSpec model, TrainingSettings s, int ranks)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(s);
        var notes = new List<string>();
        if (s.OptimizerRamBudget is { } budget)
        {
            long share = (model.TotalParameters + Math.Max(1, ranks) - 1) / Math.Max(1, ranks);
            var state = Units.Bytes.OfElements(share, Memory.StateLayout.OptimizerStateBytes(s));
            bool fits = s.OptimizerOffload == OffloadTier.Nvme && budget >= state;
            var nearest = s with { OptimizerRamBudget = null };
            if (fits)
            {
                nearest = nearest with { OptimizerOffload = OffloadTier.Cpu };
                notes.Add($"DeepSpeed cannot split the optimizer between RAM and NVMe: the budget {budget} holds all of this process's optimizer state ({state}), so the config puts the whole optimizer in CPU RAM (offload_optimizer.device cpu).");
            }
            else if (s.OptimizerOffload == OffloadTier.Nvme)
            {
                notes.Add($"DeepSpeed cannot split the optimizer between RAM and NVMe: --optimizer-ram-budget {budget} holds less than this process's optimizer state ({state}), so the config keeps the whole optimizer on NVMe; the aios engine would keep part of it in RAM (aios train runs the split).");
            }
            s = nearest;
        }
        if (s.MasterWeights == Optim.MasterWeights.Split)
        {
            s = s with { MasterWeights = Optim.MasterWeights.Fp32 };
            notes.Add("DeepSpeed's offloaded optimizer keeps a whole fp32 master per parameter: the config keeps fp32 master weights " +
                      "(4 bytes per parameter in the state, 2 more than split); --master-weights split runs only in `aios train`.");
        }
        if (s.CudaGraphs)
        {
            s = s with { CudaGraphs = false };
            notes.Add(CudaGraphsNote);
        }
        if (s.ParamOffload == OffloadTier.Nvme && s.PartitionsParameters)
            notes.Add($"offload_param.max_in_cpu ({s.MaxInCpu:N0} elements) is passed through, but DeepSpeed's parameter swapper is reported not to act on it (deepspeedai/DeepSpeed issue 4221): expect every parameter partition on NVMe.");
        return (s, notes);
    }

    /// <summary>The config as indented JSON text.</summary>
    public static string ToJson(JsonObject config) => config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>DeepSpeed's stage number for a stage: Infinity is stage 3 with NVMe offload.</summary>
    public static int StageNumber(ZeroStage stage) => stage switch
    {
        ZeroStage.None => 0,
        ZeroStage.Zero1 => 1,
        ZeroStage.Zero2 => 2,
        _ => 3,
    };

    private static JsonObject Zero(ModelSpec model, TrainingSettings s)
    {
        long hidden = model.HiddenSize;
        var zero = new JsonObject { ["stage"] = StageNumber(s.ZeroStage) };
        if (s.ZeroStage == ZeroStage.None) return zero;
        zero["overlap_comm"] = true;
        zero["contiguous_gradients"] = true;
        zero["reduce_bucket_size"] = hidden * hidden;
        if (s.PartitionsParameters)
        {
            zero["sub_group_size"] = s.SubGroupSize;
            zero["stage3_prefetch_bucket_size"] = Memory.ParameterWorkingSet.PrefetchBucket(model, s);
            zero["stage3_param_persistence_threshold"] = Memory.ParameterWorkingSet.PersistenceThreshold(model, s);
            zero["stage3_max_live_parameters"] = s.MaxLiveParameters;
            zero["stage3_max_reuse_distance"] = 1_000_000_000L;
            zero["stage3_gather_16bit_weights_on_model_save"] = true;
            if (s.ParamOffload != OffloadTier.None)
            {
                var param = new JsonObject { ["device"] = Device(s.ParamOffload), ["pin_memory"] = s.PinMemory };
                if (s.ParamOffload == OffloadTier.Nvme)
                {
                    param["nvme_path"] = s.NvmePath;
                    param["buffer_count"] = s.BufferCount;
                    param["buffer_size"] = s.BufferSize;
                    param["max_in_cpu"] = s.MaxInCpu;
                }
                zero["offload_param"] = param;
            }
        }
        if (s.OptimizerOffload != OffloadTier.None)
        {
            var opt = new JsonObject { ["device"] = Device(s.OptimizerOffload), ["pin_memory"] = s.PinMemory };
            if (s.OptimizerOffload == OffloadTier.Nvme)
            {
                opt["nvme_path"] = s.NvmePath;
                opt["buffer_count"] = s.OptimizerBufferCount;
                opt["pipeline_read"] = s.PipelineRead;
                opt["pipeline_write"] = s.PipelineWrite;
                opt["fast_init"] = false;
            }
            zero["offload_optimizer"] = opt;
        }
        return zero;
    }

    private static JsonObject Aio(AioSettings aio) => new()
    {
        ["block_size"] = aio.BlockSize.Value,
        ["queue_depth"] = aio.QueueDepth,
        ["intra_op_parallelism"] = aio.IntraOpParallelism,
        ["single_submit"] = aio.SingleSubmit,
        ["overlap_events"] = aio.OverlapEvents,
        ["use_gds"] = false,
    };

    /// <summary>
    /// The <c>scheduler</c> section whose documented formulas (warmup_type linear) give <see cref="LearningRateSchedule.LrAt"/>
    /// at each iteration; null for a constant rate without warm-up, which needs none.
    /// </summary>
    public static JsonObject? Scheduler(LearningRateSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (schedule.EffectiveWarmupSteps == 0 && schedule.Decay == LearningRateDecay.Constant) return null;
        JsonObject parameters = schedule.Decay switch
        {
            LearningRateDecay.Constant => new JsonObject
            {
                ["warmup_min_lr"] = schedule.MinLearningRate,
                ["warmup_max_lr"] = schedule.BaseLearningRate,
                ["warmup_num_steps"] = schedule.EffectiveWarmupSteps,
                ["warmup_type"] = "linear",
            },
            LearningRateDecay.Linear => new JsonObject
            {
                ["total_num_steps"] = schedule.TotalSteps,
                ["warmup_min_lr"] = schedule.MinLearningRate,
                ["warmup_max_lr"] = schedule.BaseLearningRate,
                ["warmup_num_steps"] = schedule.EffectiveWarmupSteps,
                ["warmup_type"] = "linear",
            },
            // WarmupCosineLR scales the optimizer's lr by ratios; its total is one past the run's (see CosineTotalSteps).
            _ => new JsonObject
            {
                ["total_num_steps"] = schedule.CosineTotalSteps,
                ["warmup_min_ratio"] = Ratio(schedule),
                ["warmup_num_steps"] = schedule.EffectiveWarmupSteps,
                ["cos_min_ratio"] = Ratio(schedule),
                ["warmup_type"] = "linear",
            },
        };
        string type = schedule.Decay switch
        {
            LearningRateDecay.Constant => "WarmupLR",
            LearningRateDecay.Linear => "WarmupDecayLR",
            _ => "WarmupCosineLR",
        };
        return new JsonObject { ["type"] = type, ["params"] = parameters };
    }

    private static double Ratio(LearningRateSchedule s) => s.BaseLearningRate > 0 ? s.MinLearningRate / s.BaseLearningRate : 0;

    private static string Device(OffloadTier tier) => tier == OffloadTier.Nvme ? "nvme" : "cpu";
}

/// <summary>Optimizer hyper-parameters written into the DeepSpeed config.</summary>
public sealed record DeepSpeedOptimizer
{
    /// <summary>The learning rate and its schedule (the optimizer's <c>lr</c> is its base rate); default: constant 1e-4, as <c>aios train</c>.</summary>
    public LearningRateSchedule Schedule { get; init; } = new();
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.01;
    public double GradientClipping { get; init; } = 1.0;
}
