using System.Runtime.InteropServices;
using AiOs.Planner.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// One unit's block-wise 8-bit Adam moments on the device (<c>--optimizer-state 8bit</c> in a resident run): m and v as
/// one uint8 code per parameter (<see cref="DynamicQuantizationMap.Signed"/> and <see cref="DynamicQuantizationMap.Unsigned"/>)
/// and one fp32 scale per block of <see cref="BlockwiseQuantization.BlockSize"/>. Blocks start at every tensor's first
/// element, as the CPU optimizer's (<c>EightBitMoments</c>) and the checkpoint's (<c>OptimizerStateTensors</c>) do, so a
/// checkpoint round-trips the codes and scales exactly: 2 bytes per parameter plus 8 per block instead of 8 per parameter.
/// </summary>
public sealed class DeviceEightBitMoments : IDisposable
{
    /// <summary>A tensor of the unit: its first element, length, and the index of its first block's scale.</summary>
    public readonly record struct Piece(long Start, long Length, long FirstBlock);

    /// <summary>Allocates zero moments (zero codes decode to zero with zero scales) for a unit whose tensors start at <paramref name="tensorStarts"/>.</summary>
    /// <param name="tensorStarts">Element offsets where the unit's tensors start (ascending from 0; the parameter layout's).</param>
    /// <param name="elements">The unit's parameters.</param>
    /// <param name="device">Where the moments live.</param>
    public DeviceEightBitMoments(IReadOnlyList<long> tensorStarts, long elements, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(elements, 1);
        var starts = tensorStarts.Where(s => s > 0 && s < elements).Prepend(0).Distinct().Order().Append(elements).ToArray();
        var pieces = new Piece[starts.Length - 1];
        long block = 0;
        var blockStarts = new List<long>();
        for (int i = 0; i < pieces.Length; i++)
        {
            long length = starts[i + 1] - starts[i];
            pieces[i] = new Piece(starts[i], length, block);
            for (long b = 0; b < BlockwiseQuantization.Blocks(length); b++) blockStarts.Add(starts[i] + b * BlockwiseQuantization.BlockSize);
            block += BlockwiseQuantization.Blocks(length);
        }
        blockStarts.Add(elements);
        Pieces = pieces;
        Elements = elements;
        Blocks = block;
        using var scope = NewDisposeScope();
        // The zero code of the signed map is 127, but a zero scale makes every code decode to zero, so zeros are a valid start.
        MCodes = zeros([elements], ScalarType.Byte, device).DetachFromDisposeScope();
        VCodes = zeros([elements], ScalarType.Byte, device).DetachFromDisposeScope();
        MScales = zeros([block], ScalarType.Float32, device).DetachFromDisposeScope();
        VScales = zeros([block], ScalarType.Float32, device).DetachFromDisposeScope();
        // The fused kernel's block table: block b covers [BlockStarts[b], BlockStarts[b + 1]).
        BlockStarts = tensor(blockStarts.ToArray(), ScalarType.Int64).to(device).DetachFromDisposeScope();
    }

    /// <summary>The unit's tensors, each quantised from its own first element.</summary>
    public IReadOnlyList<Piece> Pieces { get; }

    /// <summary>Parameters of the unit (codes per moment).</summary>
    public long Elements { get; }

    /// <summary>Quantisation blocks of the unit (scales per moment).</summary>
    public long Blocks { get; }

    /// <summary>First-moment codes, uint8 [<see cref="Elements"/>], signed dynamic map.</summary>
    public Tensor MCodes { get; }

    /// <summary>Second-moment codes, uint8 [<see cref="Elements"/>], unsigned dynamic map.</summary>
    public Tensor VCodes { get; }

    /// <summary>First-moment scales, fp32 [<see cref="Blocks"/>]: each block's element of largest magnitude, with its sign.</summary>
    public Tensor MScales { get; }

    /// <summary>Second-moment scales, fp32 [<see cref="Blocks"/>].</summary>
    public Tensor VScales { get; }

    /// <summary>Int64 [<see cref="Blocks"/> + 1]: each block's first element, then <see cref="Elements"/>.</summary>
    public Tensor BlockStarts { get; }

    /// <summary>Device bytes of the moments (codes and scales; the block table not counted).</summary>
    public long Bytes => 2 * Elements + 8 * Blocks;

    /// <summary>The fp32 moments the codes stand for (for a checkpoint, which requantises them to the same codes).</summary>
    public (float[] ExpAvg, float[] ExpAvgSq) Decode()
    {
        byte[] mc = HostBytes(MCodes), vc = HostBytes(VCodes);
        float[] ms = HostFloats(MScales), vs = HostFloats(VScales);
        var m = new float[Elements];
        var v = new float[Elements];
        foreach (Piece p in Pieces)
        {
            var (at, n, b, blocks) = ((int)p.Start, (int)p.Length, (int)p.FirstBlock, (int)BlockwiseQuantization.Blocks(p.Length));
            BlockwiseQuantization.Dequantize(mc.AsSpan(at, n), ms.AsSpan(b, blocks), m.AsSpan(at, n), DynamicQuantizationMap.Signed);
            BlockwiseQuantization.DequantizeSecondMoment(vc.AsSpan(at, n), vs.AsSpan(b, blocks), v.AsSpan(at, n));
        }
        return (m, v);
    }

    /// <summary>Quantises fp32 moments into the codes and scales (restoring a checkpoint: a dequantised one gives its codes back).</summary>
    /// <exception cref="ArgumentException">A moment is NaN or ±∞, or the lengths are not <see cref="Elements"/>.</exception>
    public void Encode(ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        if (expAvg.Length != Elements || expAvgSq.Length != Elements)
            throw new ArgumentException($"The unit has {Elements} parameters; got {expAvg.Length} and {expAvgSq.Length} moment values.");
        var mc = new byte[Elements];
        var vc = new byte[Elements];
        var ms = new float[Blocks];
        var vs = new float[Blocks];
        foreach (Piece p in Pieces)
        {
            var (at, n, b, blocks) = ((int)p.Start, (int)p.Length, (int)p.FirstBlock, (int)BlockwiseQuantization.Blocks(p.Length));
            BlockwiseQuantization.Quantize(expAvg.Slice(at, n), mc.AsSpan(at, n), ms.AsSpan(b, blocks), DynamicQuantizationMap.Signed);
            BlockwiseQuantization.QuantizeSecondMoment(expAvgSq.Slice(at, n), vc.AsSpan(at, n), vs.AsSpan(b, blocks));
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        MCodes.copy_(tensor(mc));
        VCodes.copy_(tensor(vc));
        MScales.copy_(tensor(ms));
        VScales.copy_(tensor(vs));
    }

    /// <summary>The codes and scales as they are on the device, copied to the host (tests compare them with the CPU optimizer's).</summary>
    public (byte[] MCodes, float[] MScales, byte[] VCodes, float[] VScales) Raw() => (HostBytes(MCodes), HostFloats(MScales), HostBytes(VCodes), HostFloats(VScales));

    private static byte[] HostBytes(Tensor t)
    {
        // A scope, not a using: cpu() of a CPU tensor may be the tensor itself, which must stay alive.
        using var scope = NewDisposeScope();
        return t.cpu().data<byte>().ToArray();
    }

    private static float[] HostFloats(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.cpu().data<float>().ToArray();
    }

    /// <summary>Releases the device tensors.</summary>
    public void Dispose()
    {
        MCodes.Dispose();
        VCodes.Dispose();
        MScales.Dispose();
        VScales.Dispose();
        BlockStarts.Dispose();
    }
}
