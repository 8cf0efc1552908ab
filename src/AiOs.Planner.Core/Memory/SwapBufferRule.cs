using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Memory;

/// <summary>
/// The one rule for <c>offload_param.buffer_size</c> (issue 14 item 4): a swap buffer must hold the largest tensor that is
/// swapped through it (DeepSpeed's rule). The planner, the tuner, the settings default and the engine's check all call
/// this, so a plan never calls feasible what the engine then refuses.
/// </summary>
/// <remarks>
/// What is swapped differs by executor. DeepSpeed swaps parameters one tensor at a time, and only from NVMe (CPU-offloaded
/// parameters are not staged through the buffers): its largest is the largest single tensor. The bundled engine swaps whole
/// units (a transformer block, or the embedding with the head) whenever parameters are offloaded, to CPU or NVMe: its largest is
/// the largest unit, which for a 128K-vocabulary model (the embedding, 394M elements for a 3B shape) is well above 1e8.
/// </remarks>
public static class SwapBufferRule
{
    /// <summary>DeepSpeed's default <c>buffer_size</c> (1e8 elements), the floor of the sized default.</summary>
    public const long DeepSpeedDefault = 100_000_000;

    /// <summary>The sized default rounds up to a whole million elements, so the number reads as a setting, not a measurement.</summary>
    private const long Rounding = 1_000_000;

    /// <summary>Whether <paramref name="executor"/> stages parameters through the swap buffers under <paramref name="s"/>.</summary>
    public static bool Applies(TrainingSettings s, ExecutorKind executor) =>
        executor == ExecutorKind.Aios ? s.ParamOffload != OffloadTier.None : s.ParamOffload == OffloadTier.Nvme;

    /// <summary>Elements of the largest tensor <paramref name="executor"/> swaps through one buffer (see the remarks).</summary>
    public static long LargestSwapped(ModelSpec model, ExecutorKind executor)
    {
        ArgumentNullException.ThrowIfNull(model);
        return executor == ExecutorKind.Aios
            ? Math.Max(model.LayerParameters, model.EmbeddingParameters + model.HeadParameters)
            : model.LargestTensorElements();
    }

    /// <summary>The least <c>buffer_size</c> that works: the largest swapped tensor, rounded up to a million elements.</summary>
    public static long Required(ModelSpec model, ExecutorKind executor) => (LargestSwapped(model, executor) + Rounding - 1) / Rounding * Rounding;

    /// <summary>The default <c>buffer_size</c> for <paramref name="model"/>: DeepSpeed's 1e8, or <see cref="Required"/> when that is larger.</summary>
    public static long Default(ModelSpec model, ExecutorKind executor) => Math.Max(DeepSpeedDefault, Required(model, executor));

    /// <summary>Whether <paramref name="s"/>'s buffers hold what <paramref name="executor"/> swaps (true when it swaps nothing).</summary>
    public static bool Holds(ModelSpec model, TrainingSettings s, ExecutorKind executor) =>
        !Applies(s, executor) || s.BufferSize >= LargestSwapped(model, executor);

    /// <summary>The problem with <paramref name="s"/>'s <c>buffer_size</c> under <paramref name="executor"/>, naming the value that works; null when it holds.</summary>
    public static SettingsProblem? Problem(ModelSpec model, TrainingSettings s, ExecutorKind executor)
    {
        if (Holds(model, s, executor)) return null;
        string what = executor == ExecutorKind.Aios ? "largest unit the engine swaps" : "largest tensor, which DeepSpeed refuses";
        return new SettingsProblem("--buffer-size",
            $"buffer_size {s.BufferSize:N0} elements is smaller than {model.Name}'s {what} ({LargestSwapped(model, executor):N0} elements); use --buffer-size {Required(model, executor)}")
        { Field = "$.buffer_size" };
    }

    /// <summary>
    /// <paramref name="s"/> with <c>buffer_size</c> sized for <paramref name="model"/> when the user did not give one
    /// (<paramref name="given"/> false) and its executor swaps parameters, with a note when that raised it; a given value
    /// is kept (the plan checks it, and names the value that works).
    /// </summary>
    public static SettingsResolution SizeDefault(ModelSpec? model, TrainingSettings s, bool given)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (given || model is null || !Applies(s, s.Executor)) return new(s, []);
        long sized = Default(model, s.Executor);
        if (sized <= s.BufferSize) return new(s, []);
        return new(s with { BufferSize = sized },
            [$"--buffer-size: {sized:N0} elements, sized to hold {model.Name}'s {(s.Executor == ExecutorKind.Aios ? "largest unit" : "largest tensor")} ({LargestSwapped(model, s.Executor):N0}) rather than DeepSpeed's default {DeepSpeedDefault:G}"]);
    }
}
