using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// How the C heap hands out large blocks. glibc serves every allocation above its mmap threshold (at most
/// 32 MiB) with a fresh mmap and unmaps it on free, so a tensor that training allocates anew every step —
/// the tied head's 50257 × 768 fp32 gradient is 154 MB, the embedding's dense gradient as large — page-faults
/// all of its pages in again each time. On a busy VM that costs hundreds of milliseconds per step (gpt2 on the
/// 2-core CI VM: backward 1.9–2.0 s with fresh mappings, 1.2–1.4 s with reused ones). With mmap turned off and
/// the trim threshold raised, freed blocks stay in the heap and the next step's same-sized tensors reuse them.
/// The process's resident memory then stays near its peak rather than shrinking between steps. Limit: glibc
/// still maps blocks above 64 MiB afresh when a thread other than the main one allocates them from its own
/// arena (limiting glibc to one arena would cover those, but measured no faster on the CI VM: 2.90–3.43 s
/// against 2.91–2.92 s per step). Calibration's compute probe runs under the same setting, so the profile
/// measures what the engine gets.
/// Set <c>AIOS_SYSTEM_MALLOC=1</c> to keep glibc's defaults.
/// </summary>
public static partial class HostHeap
{
    private const int MTrimThreshold = -1;
    private const int MMmapMax = -4;

    /// <summary>What <see cref="Configure"/> did: "reuse", "system" (asked for), or why it could not.</summary>
    public static string Mode { get; private set; } = "system";

    /// <summary>Keeps freed large blocks for reuse unless <c>AIOS_SYSTEM_MALLOC=1</c> (read here: set it before the process starts training); Linux with glibc only. The engine calls it once, when TorchSharp is first readied.</summary>
    public static void Configure()
    {
        if (Environment.GetEnvironmentVariable("AIOS_SYSTEM_MALLOC") == "1") { Mode = "system"; return; }
        if (!OperatingSystem.IsLinux()) { Mode = "system (not Linux)"; return; }
        try
        {
            // Order matters little; both are process-wide and apply to allocations from now on.
            bool trim = mallopt(MTrimThreshold, int.MaxValue) == 1;
            bool mmap = mallopt(MMmapMax, 0) == 1;
            Mode = trim && mmap ? "reuse" : "system (mallopt refused)";
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            Mode = "system (no glibc mallopt)";
        }
    }

    [LibraryImport("libc.so.6", EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);
}
