using System.Runtime.CompilerServices;
using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Test classes run in parallel, and the first TorchSharp call in a process fixes for good whether its
/// native library loads. Preparing the runtime when this assembly loads, before any test runs, keeps a
/// test that touches TorchSharp directly from racing the Debian 12 patch.
/// </summary>
internal static class TorchSharpFirst
{
#pragma warning disable CA2255 // A module initializer is the one hook that runs before every test in this assembly.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Prepare() => TorchRuntime.EnsureReady();
}
