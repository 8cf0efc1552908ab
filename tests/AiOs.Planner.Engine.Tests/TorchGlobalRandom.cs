namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Tests that replay dropout masks: <c>DropoutReplay</c> re-seeds libtorch's global generator before each unit, and that
/// generator is one per process, so a test class drawing random numbers on another thread at the same moment changes
/// the masks (seen as rare loss mismatches in full runs on a loaded 2-core VM). This collection runs alone, after the
/// parallel ones. In training one trainer owns the process, so the engine itself is not exposed to this.
/// </summary>
[CollectionDefinition(nameof(TorchGlobalRandom), DisableParallelization = true)]
public sealed class TorchGlobalRandom;
