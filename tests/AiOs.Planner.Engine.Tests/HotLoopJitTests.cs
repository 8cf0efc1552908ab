using System.Reflection;
using AiOs.Planner.Engine.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine's per-step CPU passes (Σg², bf16 widening and rounding, gradient sums) are compiled fully optimised at
/// their first call, not run as tier-0 code while the training process is still jitting (issue 13, as CpuAdam's kernels).
/// </summary>
public class HotLoopJitTests
{
    [Theory]
    [InlineData(typeof(SpanMath), "AddChunk")]
    [InlineData(typeof(SpanMath), "SumOfSquaresChunk")]
    [InlineData(typeof(SpanMath), "SumOfSquaresBf16Chunk")]
    [InlineData(typeof(PrecisionCast), "ToBf16Chunk")]
    [InlineData(typeof(PrecisionCast), "WidenBf16Chunk")]
    public void Pass_is_compiled_optimised_at_its_first_call(Type type, string name)
    {
        MethodInfo method = type.GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"{type.Name} has no method {name}.");
        Assert.True(method.MethodImplementationFlags.HasFlag(MethodImplAttributes.AggressiveOptimization),
            $"{type.Name}.{name} lacks [MethodImpl(MethodImplOptions.AggressiveOptimization)].");
    }
}
