using System.CommandLine;
using AiOs.Planner.Units;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>--gpu-memory-limit SIZE</c> for the planning commands (plan, tune, whatif): plan the profile's GPU held to SIZE.</summary>
internal static class GpuMemoryLimitOption
{
    /// <summary>The option, null unless given; the commands apply it with <see cref="Planning.GpuMemoryLimit.Apply"/>.</summary>
    public static Option<Bytes?> Create() => SizeOption.CreateOptional(Planning.GpuMemoryLimit.Flag,
        "Plan the profile's GPU with only this much memory (e.g. 11G), as `aios train --gpu-memory-limit` holds the device: plan a smaller card on this profile's rates");
}
