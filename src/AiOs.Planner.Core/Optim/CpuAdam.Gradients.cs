using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AiOs.Planner.Optim;

/// <summary>The gradient sources CpuAdam's kernels read: fp32 arrays, or bf16 bits widened as they are loaded.</summary>
public static unsafe partial class CpuAdam
{
    /// <summary>
    /// Where a pass reads its gradients: each kernel loads two of its vectors per iteration, so a bf16 source loads one
    /// vector of the same width in ushorts and widens its halves (a struct, so the JIT compiles each kernel once per source).
    /// </summary>
    internal interface IGradients<TSelf> where TSelf : struct, IGradients<TSelf>
    {
        /// <summary>The source from element <paramref name="start"/> on.</summary>
        TSelf From(long start);
        float At(long i);
        void Load256(long i, out Vector256<float> g0, out Vector256<float> g1);
        void Load512(long i, out Vector512<float> g0, out Vector512<float> g1);
        void LoadVector(long i, out Vector<float> g0, out Vector<float> g1);
    }

    /// <summary>fp32 gradients.</summary>
    internal readonly struct Fp32Gradients(float* g) : IGradients<Fp32Gradients>
    {
        private readonly float* _g = g;
        public Fp32Gradients From(long start) => new(_g + start);
        public float At(long i) => _g[i];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load256(long i, out Vector256<float> g0, out Vector256<float> g1)
        {
            g0 = Vector256.Load(_g + i);
            g1 = Vector256.Load(_g + i + Vector256<float>.Count);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load512(long i, out Vector512<float> g0, out Vector512<float> g1)
        {
            g0 = Vector512.Load(_g + i);
            g1 = Vector512.Load(_g + i + Vector512<float>.Count);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void LoadVector(long i, out Vector<float> g0, out Vector<float> g1)
        {
            g0 = Vector.Load(_g + i);
            g1 = Vector.Load(_g + i + Vector<float>.Count);
        }
    }

    /// <summary>bf16 gradients (their bits), widened exactly: the bits shifted into the high half of an fp32.</summary>
    internal readonly struct Bf16Gradients(ushort* g) : IGradients<Bf16Gradients>
    {
        private readonly ushort* _g = g;
        public Bf16Gradients From(long start) => new(_g + start);
        public float At(long i) => BitConverter.UInt32BitsToSingle((uint)_g[i] << 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load256(long i, out Vector256<float> g0, out Vector256<float> g1)
        {
            var (lo, hi) = Vector256.Widen(Vector256.Load(_g + i));
            g0 = Vector256.ShiftLeft(lo, 16).AsSingle();
            g1 = Vector256.ShiftLeft(hi, 16).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load512(long i, out Vector512<float> g0, out Vector512<float> g1)
        {
            var (lo, hi) = Vector512.Widen(Vector512.Load(_g + i));
            g0 = Vector512.ShiftLeft(lo, 16).AsSingle();
            g1 = Vector512.ShiftLeft(hi, 16).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void LoadVector(long i, out Vector<float> g0, out Vector<float> g1)
        {
            Vector.Widen(Vector.Load(_g + i), out Vector<uint> lo, out Vector<uint> hi);
            g0 = Vector.AsVectorSingle(Vector.ShiftLeft(lo, 16));
            g1 = Vector.AsVectorSingle(Vector.ShiftLeft(hi, 16));
        }
    }
}
