using System.Reflection;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// CpuAdam's kernels are compiled fully optimised at their first call: under tiered compilation a training process
/// that keeps jitting new code runs them as tier-0 code for its first steps (issue 13: gpt2's CPU updates 3.3× slower
/// for 5 steps on the H200). A kernel that loses the flag goes back to that.
/// </summary>
public class CpuAdamJitTests
{
    [Theory]
    [InlineData("Update")]
    [InlineData("Update256")]
    [InlineData("Update512")]
    [InlineData("UpdateVector")]
    public void Kernel_is_compiled_optimised_at_its_first_call(string name)
    {
        MethodInfo method = typeof(CpuAdam).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"CpuAdam has no kernel {name}.");
        Assert.True(method.MethodImplementationFlags.HasFlag(MethodImplAttributes.AggressiveOptimization),
            $"CpuAdam.{name} lacks [MethodImpl(MethodImplOptions.AggressiveOptimization)]: it would run as tier-0 code while the process jits.");
    }
}
