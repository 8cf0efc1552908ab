using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// Makes dropout masks reproducible per (step, micro-batch, unit): the global generator is re-seeded
/// before a unit runs, so recomputing a layer in backward draws the same masks as its forward did, and
/// the all-in-memory reference draws the same masks as the layer-by-layer engine.
/// </summary>
public sealed record DropoutReplay(long Seed, int Step, int MicroBatch)
{
    /// <summary>Seeds the CPU (and, where present, CUDA) generators for <paramref name="unit"/> (layer index; −1 the embedding).</summary>
    public void Before(int unit, Device device)
    {
        var mix = SplitMix64.For(Seed, 0x0D50, Step, MicroBatch, unit);
        long seed = (long)(mix.Next() >> 1);
        random.manual_seed(seed);
        if (device.type == TorchSharp.DeviceType.CUDA) cuda.manual_seed_all(seed);
    }
}
