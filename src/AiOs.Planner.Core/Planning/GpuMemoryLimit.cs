using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Planning;

/// <summary>
/// <c>--gpu-memory-limit SIZE</c> on the planning commands (plan, tune, whatif): the profile's GPU planned with its memory
/// held to SIZE, as <c>aios train --gpu-memory-limit</c> holds the device, so a user can plan a smaller card.
/// </summary>
public static class GpuMemoryLimit
{
    /// <summary>
    /// The least limit taken: below it the CUDA context, cuBLAS workspaces and the allocator's reserve leave nothing to
    /// plan with (a context alone takes 300–600 MiB), so a smaller figure is a typo (11M for 11G), not a card.
    /// </summary>
    public static readonly Bytes Minimum = Bytes.FromGiB(1);

    /// <summary>The flag's name, for messages.</summary>
    public const string Flag = "--gpu-memory-limit";

    /// <summary>
    /// <paramref name="hardware"/> with its GPU's memory held to <paramref name="limit"/>, its name saying so; the profile
    /// unchanged when <paramref name="limit"/> is null.
    /// </summary>
    /// <exception cref="DescriptionException">The profile has no GPU, or the limit is above the card's memory or below <see cref="Minimum"/>.</exception>
    public static HardwareProfile Apply(HardwareProfile hardware, Bytes? limit)
    {
        ArgumentNullException.ThrowIfNull(hardware);
        if (limit is not { } cap) return hardware;
        if (hardware.Gpu is not { } gpu || hardware.GpusPerNode == 0)
            throw new DescriptionException($"{Flag} {cap}: {hardware.Name} has no GPU; plan for a GPU profile or leave {Flag} out.");
        if (cap > gpu.Memory)
            throw new DescriptionException($"{Flag} {cap} is above the {gpu.Memory} of {hardware.Name}'s {gpu.Model}; give at most {gpu.Memory} (a limit only holds a card to less).");
        if (cap < Minimum)
            throw new DescriptionException($"{Flag} {cap} is below {Minimum}, less than a CUDA context and the allocator's reserve leave to train with; give a size such as 11G.");
        return hardware with { Name = $"{hardware.Name} (GPU held to {cap})", Gpu = gpu with { MemoryGib = cap.GiB } };
    }

    /// <summary>The note a plan prints: what card was planned, and what it was held to.</summary>
    public static string Note(HardwareProfile original, Bytes limit) =>
        $"{Flag} {limit}: planned {original.Name}'s {original.Gpu?.Model} with {limit} of its {original.Gpu?.Memory} (as aios train {Flag} holds the device)";
}
