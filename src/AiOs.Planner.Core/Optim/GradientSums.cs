using System.Numerics;
using System.Runtime.InteropServices;

namespace AiOs.Planner.Optim;

/// <summary>
/// The engine's host pass that adds a later micro-batch's gradients into a unit's fp32 sum (the layer-by-layer trainer's
/// download of micro-batch 1 onwards), split evenly over the cores: in Core so that <c>aios calibrate</c> times the very pass
/// the plan prices (<see cref="Hardware.CpuSpec.HostAddGbps"/>).
/// </summary>
public static class GradientSums
{
    /// <summary>Element-wise passes below this many elements run inline on the calling thread (the simulator prices the split with the same figure).</summary>
    public const int MinPart = Simulation.HostPass.EvenMinPart;

    /// <summary>
    /// sums[i] += widen(bf16[i]) (or = with <paramref name="overwrite"/>): the widening is exact (the bits shifted up by 16)
    /// and each element gets the one fp32 add the scalar loop gives it, so the sums are the same bits whatever the vector
    /// width or core count; vectorised and split evenly over the cores (<see cref="EvenParts"/>).
    /// </summary>
    public static unsafe void AddBf16(Span<float> sums, ReadOnlySpan<ushort> bf16, bool overwrite = false)
    {
        if (sums.Length != bf16.Length) throw new ArgumentException("Lengths differ.", nameof(bf16));
        fixed (float* a = sums)
        fixed (ushort* b = bf16)
        {
            nint ap = (nint)a, bp = (nint)b;
            EvenParts(bf16.Length, (start, count) =>
                AddBf16Chunk(new Span<float>((float*)ap + start, count), new ReadOnlySpan<ushort>((ushort*)bp + start, count), overwrite));
        }
    }

    /// <summary>acc[i] (+)= the fp32 value of bf16 bits values[i] (exact: the bits shifted up by 16), on the calling thread.</summary>
    public static void AddBf16Chunk(Span<float> acc, ReadOnlySpan<ushort> values, bool overwrite)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var v = MemoryMarshal.Cast<ushort, Vector<ushort>>(values);
            int step = Vector<float>.Count;
            for (int k = 0; k < v.Length; k++, i += 2 * step)
            {
                Vector.Widen(v[k], out Vector<uint> low, out Vector<uint> high);
                var lo = Vector.AsVectorSingle(low << 16);
                var hi = Vector.AsVectorSingle(high << 16);
                var a0 = new Vector<float>(acc.Slice(i, step));
                var a1 = new Vector<float>(acc.Slice(i + step, step));
                (overwrite ? lo : a0 + lo).CopyTo(acc.Slice(i, step));
                (overwrite ? hi : a1 + hi).CopyTo(acc.Slice(i + step, step));
            }
        }
        for (; i < acc.Length; i++)
        {
            float x = BitConverter.UInt32BitsToSingle((uint)values[i] << 16);
            acc[i] = overwrite ? x : acc[i] + x;
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/>(start, count) over [0, <paramref name="length"/>) in at most one part per thread of the
    /// process's default <see cref="CpuWorkers"/> set (every core, or the CPU update's threads: <see cref="CpuWorkers.UseForEveryPass"/>),
    /// of equal lengths (multiples of 64 elements, so every part but the last is whole vectors), at least <see cref="MinPart"/> each. For element-wise work only: the parts depend on the core count, so a reduction
    /// must use fixed chunks instead. Even parts keep every core busy to the end, where fixed 2^20-element chunks gave a
    /// gpt2-large layer (19 chunks) a second round on 3 of 16 cores (issue 13's H100 grid: 8–11 ms per later micro-batch
    /// download of a gpt2-large layer, 3 ms for gpt2-medium's 13 chunks; the second round was the suspect).
    /// </summary>
    public static void EvenParts(int length, Action<int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        CpuWorkers workers = CpuWorkers.ForCores();
        int parts = Math.Clamp(length / MinPart, 1, workers.Threads);
        if (parts == 1)
        {
            body(0, length);
            return;
        }
        // Each part ⌈length / parts⌉ rounded up to whole 64 elements, so the parts never outnumber the cores.
        int size = (int)(((long)length + parts - 1) / parts + 63) & ~63;
        parts = (length + size - 1) / size;
        workers.For(parts, p =>
        {
            int start = (int)p * size;
            body(start, Math.Min(size, length - start));
        });
    }
}
