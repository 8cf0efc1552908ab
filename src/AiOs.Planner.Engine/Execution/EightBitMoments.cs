using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Block-wise 8-bit Adam moments for <see cref="OptimizerStates"/> (<c>--optimizer-state 8bit</c>): how a sub-group's
/// moments are laid out, updated (<see cref="BlockwiseAdam"/>, one pass per block), encoded and decoded. A sub-group's
/// moments are <c>[m codes | v codes | m scales | v scales]</c> (n + n bytes, then one fp32 scale per block of each);
/// on NVMe they follow the fp32 master in the same swap object, in RAM they have an array per sub-group.
/// </summary>
/// <remarks>
/// Blocks start at every tensor's first element (and at the sub-group's), so with one sub-group per unit (or cuts on
/// 2,048-element boundaries) the blocks are a checkpoint's, which quantises tensor by tensor: saving and resuming then
/// round-trips the codes and scales exactly. A sub-group that cuts a tensor elsewhere re-quantises on resume.
/// </remarks>
internal sealed class EightBitMoments
{
    /// <summary>A run of a sub-group inside one tensor: quantised from its own first element.</summary>
    private readonly record struct Piece(int Start, int Length, int ScaleOffset);

    private readonly IReadOnlyList<long[]> _tensorStarts;
    private readonly AdamWOptions _options;
    private readonly AdamHyperParameters _hp;
    private readonly int _threads;
    private readonly ConcurrentDictionary<(int Unit, int Index), Piece[]> _pieces = new();
    private readonly ConcurrentDictionary<(int Unit, int Index), byte[]> _ram = new();

    /// <param name="tensorStarts">Per unit, the element offsets where its tensors start (the checkpoint's layout).</param>
    /// <param name="options">The AdamW hyper-parameters and schedule (as <see cref="CpuAdamStep"/> takes them).</param>
    /// <param name="threads">Threads per update (default: every core).</param>
    public EightBitMoments(IReadOnlyList<long[]> tensorStarts, AdamWOptions options, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _tensorStarts = tensorStarts;
        _options = options;
        _hp = options.HyperParametersAt(1);
        _threads = Math.Max(1, threads ?? Environment.ProcessorCount);
    }

    /// <summary>
    /// The 8-bit moments <paramref name="settings"/> ask for (with the model's tensor starts), or null for fp32 state. With
    /// several <paramref name="ranks"/> a rank's units are its flat shards: blocks run from each sub-group's start across
    /// tensor boundaries, as DeepSpeed's flat partitions do, and as <see cref="Checkpoints.ShardedCheckpoint"/> blocks a shard.
    /// </summary>
    public static EightBitMoments? For(Models.ModelSpec spec, Settings.TrainingSettings settings, EngineOptions options, int ranks = 1, int? threads = null) =>
        settings.OptimizerState != OptimizerStateFormat.EightBit ? null
        : ranks > 1 ? new EightBitMoments([.. Enumerable.Repeat(Array.Empty<long>(), spec.NumLayers + 1)], options.Adam, threads)
        : new EightBitMoments(
            [.. Enumerable.Repeat(Model.ParameterLayout.ForLayer(spec).Slices.Select(s => s.Offset).ToArray(), spec.NumLayers),
             Model.ParameterLayout.ForOuter(spec).Slices.Select(s => s.Offset).ToArray()], options.Adam, threads);

    /// <summary>Bytes of the sub-group's moments, scales included.</summary>
    public long MomentBytes(SubGroup g) => 2L * g.Elements + 8L * Scales(g);

    /// <summary>Bytes of the sub-group's whole state: fp32 master then the moments.</summary>
    public long StateBytes(SubGroup g) => 4L * g.Elements + MomentBytes(g);

    /// <summary>The sub-group's moments kept in RAM (zero until first written: zero scales decode to zero moments).</summary>
    public Span<byte> InRam(SubGroup g) => _ram.GetOrAdd((g.Unit, g.Index), _ => new byte[MomentBytes(g)]);

    /// <summary>
    /// One AdamW step on the sub-group: <paramref name="master"/> updated in place, <paramref name="moments"/> re-encoded;
    /// the bf16 copy written into <paramref name="bf16"/> unless empty.
    /// </summary>
    public void Step(SubGroup g, Span<float> master, ReadOnlySpan<float> gradient, Span<byte> moments, int step, float gradScale, Span<ushort> bf16)
    {
        AdamHyperParameters hp = _options.Schedule is null ? _hp : _hp with { LearningRate = (float)_options.LearningRateAt(step) };
        Split(g, moments, out Span<byte> mCodes, out Span<byte> vCodes, out Span<float> mScales, out Span<float> vScales);
        if (!bf16.IsEmpty && bf16.Length != master.Length)
            throw new ArgumentException($"sub-group {g.Index} of unit {g.Unit} has {master.Length} parameters; its bf16 copy has {bf16.Length} elements.", nameof(bf16));
        // A block with a non-finite gradient is left as it was; the trainer has already refused such a step (its norms pass).
        // The bf16 copy is written in the update's pass, as CpuAdam writes it for fp32 state: no second pass over the master.
        foreach (Piece p in PiecesOf(g))
        {
            int blocks = (int)BlockwiseQuantization.Blocks(p.Length);
            BlockwiseAdam.Step(master.Slice(p.Start, p.Length), gradient.Slice(p.Start, p.Length), mCodes.Slice(p.Start, p.Length),
                mScales.Slice(p.ScaleOffset, blocks), vCodes.Slice(p.Start, p.Length), vScales.Slice(p.ScaleOffset, blocks),
                bf16.IsEmpty ? [] : bf16.Slice(p.Start, p.Length), step, hp, gradScale, _threads);
        }
    }

    /// <summary>
    /// Quantises fp32 moments of the sub-group into <paramref name="moments"/> (the start-up's zero moments, or restoring a
    /// checkpoint), on every core: each piece in <see cref="Chunked"/> chunks, whole blocks each, so the codes and scales are
    /// those of one pass over the piece (<see cref="BlockwiseQuantization.Quantize"/>) whatever the thread count.
    /// </summary>
    public void Encode(SubGroup g, ReadOnlySpan<float> m, ReadOnlySpan<float> v, Span<byte> moments)
    {
        Split(g, moments, out Span<byte> mCodes, out Span<byte> vCodes, out Span<float> mScales, out Span<float> vScales);
        foreach (Piece p in PiecesOf(g))
        {
            int blocks = (int)BlockwiseQuantization.Blocks(p.Length);
            QuantizeInChunks(m.Slice(p.Start, p.Length), mCodes.Slice(p.Start, p.Length), mScales.Slice(p.ScaleOffset, blocks), secondMoment: false);
            QuantizeInChunks(v.Slice(p.Start, p.Length), vCodes.Slice(p.Start, p.Length), vScales.Slice(p.ScaleOffset, blocks), secondMoment: true);
        }
    }

    /// <summary>
    /// One piece's first (<see cref="DynamicQuantizationMap.Signed"/>) or second moment quantised chunk by chunk in parallel:
    /// a chunk holds whole blocks (<see cref="Chunked.Size"/> is a multiple of <see cref="BlockwiseQuantization.BlockSize"/>),
    /// so chunk c's scales are blocks c·Size/BlockSize onwards and every block is quantised as in one pass.
    /// </summary>
    private static unsafe void QuantizeInChunks(ReadOnlySpan<float> values, Span<byte> codes, Span<float> scales, bool secondMoment)
    {
        fixed (float* x = values)
        fixed (byte* c = codes)
        fixed (float* s = scales)
        {
            nint xp = (nint)x, cp = (nint)c, sp = (nint)s;
            Chunked.For(values.Length, (_, start, count) =>
            {
                var chunk = new ReadOnlySpan<float>((float*)xp + start, count);
                var chunkCodes = new Span<byte>((byte*)cp + start, count);
                var chunkScales = new Span<float>((float*)sp + start / BlockwiseQuantization.BlockSize, (int)BlockwiseQuantization.Blocks(count));
                if (!secondMoment)
                {
                    BlockwiseQuantization.Quantize(chunk, chunkCodes, chunkScales, DynamicQuantizationMap.Signed);
                    return;
                }
                // Block by block, the square roots on the stack (8 KiB): every block is quantised on its own, so the codes and
                // scales are the chunk's in one call. A chunk-sized roots array would be 4 MB each: new, it is large-object
                // heap per chunk; from the shared array pool, it stays kept per thread, host memory the planner does not count.
                Span<float> roots = stackalloc float[BlockwiseQuantization.BlockSize];
                for (int b = 0, at = 0; at < count; b++, at += BlockwiseQuantization.BlockSize)
                {
                    int n = Math.Min(BlockwiseQuantization.BlockSize, count - at);
                    BlockwiseQuantization.QuantizeSecondMoment(chunk.Slice(at, n), chunkCodes.Slice(at, n), chunkScales.Slice(b, 1), roots);
                }
            });
        }
    }

    /// <summary>Dequantises the sub-group's moments into fp32 <paramref name="m"/> and <paramref name="v"/> (checkpoints).</summary>
    public void Decode(SubGroup g, ReadOnlySpan<byte> moments, Span<float> m, Span<float> v)
    {
        int n = g.Elements, scales = Scales(g);
        ReadOnlySpan<byte> mCodes = moments[..n], vCodes = moments.Slice(n, n);
        ReadOnlySpan<float> mScales = MemoryMarshal.Cast<byte, float>(moments.Slice(2 * n, 4 * scales));
        ReadOnlySpan<float> vScales = MemoryMarshal.Cast<byte, float>(moments.Slice(2 * n + 4 * scales, 4 * scales));
        foreach (Piece p in PiecesOf(g))
        {
            int blocks = (int)BlockwiseQuantization.Blocks(p.Length);
            BlockwiseQuantization.Dequantize(mCodes.Slice(p.Start, p.Length), mScales.Slice(p.ScaleOffset, blocks), m.Slice(p.Start, p.Length), DynamicQuantizationMap.Signed);
            BlockwiseQuantization.DequantizeSecondMoment(vCodes.Slice(p.Start, p.Length), vScales.Slice(p.ScaleOffset, blocks), v.Slice(p.Start, p.Length));
        }
    }

    private int Scales(SubGroup g)
    {
        Piece last = PiecesOf(g)[^1];
        return last.ScaleOffset + (int)BlockwiseQuantization.Blocks(last.Length);
    }

    // Scales are read through an unaligned view when n is odd: x86-64 and arm64 load unaligned floats.
    private void Split(SubGroup g, Span<byte> moments, out Span<byte> mCodes, out Span<byte> vCodes, out Span<float> mScales, out Span<float> vScales)
    {
        int n = g.Elements, scales = Scales(g);
        if (moments.Length < MomentBytes(g))
            throw new ArgumentException($"sub-group {g.Index} of unit {g.Unit} needs {MomentBytes(g)} bytes of 8-bit moments; got {moments.Length}.", nameof(moments));
        mCodes = moments[..n];
        vCodes = moments.Slice(n, n);
        mScales = MemoryMarshal.Cast<byte, float>(moments.Slice(2 * n, 4 * scales));
        vScales = MemoryMarshal.Cast<byte, float>(moments.Slice(2 * n + 4 * scales, 4 * scales));
    }

    /// <summary>The sub-group cut at every tensor start inside it.</summary>
    private Piece[] PiecesOf(SubGroup g) => _pieces.GetOrAdd((g.Unit, g.Index), _ =>
    {
        long end = g.Offset + g.Elements;
        var cuts = new List<long> { g.Offset };
        cuts.AddRange(_tensorStarts[g.Unit].Where(s => s > g.Offset && s < end).Order());
        cuts.Add(end);
        var pieces = new Piece[cuts.Count - 1];
        int scaleOffset = 0;
        for (int i = 0; i < pieces.Length; i++)
        {
            int length = (int)(cuts[i + 1] - cuts[i]);
            pieces[i] = new Piece((int)(cuts[i] - g.Offset), length, scaleOffset);
            scaleOffset += (int)BlockwiseQuantization.Blocks(length);
        }
        return pieces;
    });
}
