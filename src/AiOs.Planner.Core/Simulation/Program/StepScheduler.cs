using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Simulation.Program;

/// <summary>
/// Turns a model, machine and settings into the operations of one step, the way a ZeRO-3 / ZeRO-Infinity
/// engine performs them: parameters fetched layer by layer through a prefetch window, all-gathered,
/// used and released; backward in reverse with recompute under checkpointing, reduce-scatter, gradients
/// to the host; the optimizer over sub-groups after backward (DeepSpeed) or per layer during backward
/// (overlapped). The scheduler decides what moves where and in which order; it assigns no durations.
/// </summary>
public static partial class StepScheduler
{
    /// <summary>Builds DeepSpeed's program of one steady-state step (or the first step, which prefetches nothing).</summary>
    public static StepProgram Build(ModelSpec model, HardwareProfile hardware, TrainingSettings settings, bool firstStep = false) =>
        Build(model, hardware, settings, firstStep, ProgramShape.DeepSpeed);

    /// <summary>Builds the program of one step in <paramref name="shape"/> (<see cref="ProgramShape.DeepSpeed"/> or <see cref="ProgramShape.Engine"/>).</summary>
    /// <remarks>The engine's shape on several ranks runs the engine's ZeRO stage, whatever the settings name (<see cref="ProgramShape.EngineStage"/>).</remarks>
    public static StepProgram Build(ModelSpec model, HardwareProfile hardware, TrainingSettings settings, bool firstStep, ProgramShape shape)
    {
        if (ReferenceEquals(shape, ProgramShape.Engine)) settings = ProgramShape.EngineSettings(settings, hardware);
        var builder = new ProgramBuilder(model, hardware, settings, firstStep, shape);
        builder.Emit();
        return builder.ToProgram();
    }

    /// <summary>Units of work in the order forward uses them: -1 the embedding, 0..L-1 the layers, L the head.</summary>
    internal static IEnumerable<int> ForwardUnits(ModelSpec m) => Enumerable.Range(-1, m.NumLayers + 2);

    /// <summary>Parameters of one unit.</summary>
    internal static long UnitParameters(ModelSpec m, int unit) =>
        unit < 0 ? m.EmbeddingParameters
        : unit >= m.NumLayers ? m.HeadParameters + (m.TiedEmbeddings ? (long)m.VocabSize * m.HiddenSize : 0)
        : m.LayerParameters;

    /// <summary>Weight matrices per layer: each is one DeepSpeed swap buffer when parameters are on NVMe.</summary>
    internal static int MatricesPerLayer(ModelSpec m) => m.FfnKind == FfnKind.Swiglu ? 7 : 4;

    /// <summary>Static memory items the simulator does not move (everything in the closed-form plan but the moving parts).</summary>
    internal static Dictionary<MemoryTier, long> StaticLevels(ModelSpec m, HardwareProfile hw, TrainingSettings s)
    {
        var layout = StateLayout.For(m, hw, s);
        string[] moving = ["gathered module", "prefetched parameters", "gradient buckets"];
        long gpu = layout.Gpu.Where(i => !moving.Contains(i.Name) && !(i.Name == "gradients" && layout.GradientsFreedBetweenSteps)).Sum(i => i.Bytes.Value);
        long pageable = layout.CpuPageable.Sum(i => i.Bytes.Value);
        if (!hw.HasGpu)
        {
            pageable += gpu;
            gpu = 0;
        }
        return new Dictionary<MemoryTier, long>
        {
            [MemoryTier.Gpu] = gpu,
            [MemoryTier.CpuPinned] = layout.CpuPinned.Sum(i => i.Bytes.Value),
            [MemoryTier.CpuPageable] = pageable,
            [MemoryTier.Nvme] = layout.Nvme.Sum(i => i.Bytes.Value),
        };
    }
}
