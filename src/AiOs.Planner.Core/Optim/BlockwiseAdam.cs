using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>What one <see cref="BlockwiseAdam"/> step did with non-finite gradients.</summary>
/// <param name="SkippedBlocks">Blocks left untouched (parameters, codes and scales as before) because a gradient in them, or its square, was NaN or infinite.</param>
/// <param name="FirstSkippedElement">The first element of the first such block, or −1 when none was skipped.</param>
public readonly record struct BlockwiseAdamReport(long SkippedBlocks, long FirstSkippedElement)
{
    /// <summary>Whether every block was updated.</summary>
    public bool AllFinite => SkippedBlocks == 0;
}

/// <summary>The instruction sets a <see cref="BlockwiseAdam"/> step runs on, narrowest first; every kernel gives the same bits.</summary>
internal enum BlockwiseKernel
{
    /// <summary>Element by element through the scalar maps.</summary>
    Scalar,

    /// <summary>Eight lanes (AVX2 and FMA).</summary>
    Avx2,

    /// <summary>Sixteen lanes (AVX-512 F and BW), the last block's remainder below sixteen on the AVX2 code.</summary>
    Avx512,

    /// <summary>As <see cref="Avx512"/>, with pass 1's codes decoded by byte permutes (AVX-512 VBMI) instead of scalar look-ups.</summary>
    Avx512Vbmi,
}

/// <summary>
/// AdamW with 8-bit block-wise moments (Dettmers et al. 2022) on fp32 master weights, in place, on the CPU. Per
/// block of <see cref="BlockwiseQuantization.BlockSize"/> values, in one visit: dequantise m (signed dynamic map) and
/// v (unsigned map); with g multiplied by the clipping factor, <c>m ← β1·m + (1−β1)·g</c>, <c>v ← β2·v + (1−β2)·g²</c>
/// in fp32; <c>p ← p·(1 − lr·wd) − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)</c> with the unrounded m and v
/// (exactly <see cref="CpuAdam"/>'s arithmetic); then requantise m and √v with the block's new scales, rounded
/// stochastically (unbiased) with counter-based uniforms of the step, the block's place and the element's
/// (<see cref="StochasticRounding"/>). A block whose gradient holds NaN or ±∞ is left as it was and counted in the report,
/// never quantised. Codes are decoded by scalar look-ups in a per-block table of value × scale (a few groups ahead of the
/// vector loop), and with AVX2 and FMA encoded arithmetically (<see cref="QuantizationVectors.StochasticRanks(Vector256{float}, in QuantizationVectors.StochasticTables, Vector256{float})"/>), bit-identical to the
/// scalar map (<see cref="DynamicQuantizationMap.QuantizeStochastic"/>), in the same pass as the parameter update (and the
/// optional bf16 copy); blocks are spread in groups over the process's <see cref="CpuWorkers"/>, as CpuAdam spreads its chunks.
/// </summary>
/// <remarks>
/// <para>Blocks start at the start of the spans: a caller that quantises tensor by tensor (as checkpoints do) must step
/// tensor by tensor, or its blocks will not line up with the stored scales.</para>
/// <para>Where AVX-512 (F, BW) runs natively (<see cref="BlockwiseKernel"/>), as <see cref="CpuAdam"/> then runs its 512-bit
/// kernel, the block's work runs on sixteen lanes: the decoded tables, pass 1's moment update and extremes (the look-ups
/// stay scalar, the cheapest measured without VBMI), and pass 2's update, bf16 words (gathered by vpermw), hash, stochastic
/// ranks (the 8-entry region tables through 16-lane vpermps) and codes (narrowed by vpmovusdb), about 1.3× the AVX2 kernel's
/// rate per core (docs/benchmarks.md). With AVX-512 VBMI as well (<see cref="BlockwiseKernel.Avx512Vbmi"/>: Ice Lake and
/// later Xeons, Zen 4), pass 1 decodes 64 codes per moment in registers by byte permutes over the maps' byte planes, with
/// no per-block tables or scalar look-ups. Every kernel gives the same codes, scales, parameters and bf16 words bit for bit
/// (BlockwiseAdamKernelTests); a last block's remainder below sixteen runs the eight-lane and scalar code.</para>
/// </remarks>
public static unsafe partial class BlockwiseAdam
{
    /// <summary>The kernel this processor runs, named for calibration's report: "AVX-512 VBMI", "AVX-512", "AVX2" or "scalar".</summary>
    public static string KernelName => Kernel switch { BlockwiseKernel.Avx512Vbmi => "AVX-512 VBMI", BlockwiseKernel.Avx512 => "AVX-512", BlockwiseKernel.Avx2 => "AVX2", _ => "scalar" };

    /// <summary>The kernel steps run on here: the 512-bit one where AVX-512 (F, BW) runs natively (with VBMI's byte permutes where
    /// present), else AVX2 and FMA, else scalar.</summary>
    internal static BlockwiseKernel Kernel { get; } =
        QuantizationVectors.IsSupported512 ? (Avx512Vbmi.IsSupported ? BlockwiseKernel.Avx512Vbmi : BlockwiseKernel.Avx512) : QuantizationVectors.IsSupported ? BlockwiseKernel.Avx2 : BlockwiseKernel.Scalar;

    /// <summary>Blocks per parallel work item: 32 × 2,048 = 64 K elements, CpuAdam's chunk.</summary>
    private const int BlocksPerChunk = 32;

    /// <summary>Entries of a per-block decoded table (one per code).</summary>
    private const int DecodedTable = 256;

    /// <summary>How many elements ahead of the vector loop pass 1 looks codes up: far enough that the scalar stores have left the store queue before the vector load reads them.</summary>
    private const int LookAhead = 32;

    /// <summary>One AdamW step with 8-bit moments over spans of one tensor (or any run of whole blocks), using up to <paramref name="threads"/> threads.</summary>
    public static BlockwiseAdamReport Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<byte> mCodes, Span<float> mScales,
        Span<byte> vCodes, Span<float> vScales, int step, AdamHyperParameters hp, float gradScale = 1f, int threads = 1) =>
        Step(parameters, gradients, mCodes, mScales, vCodes, vScales, [], step, hp, gradScale, threads);

    /// <summary>
    /// As the other span overload, also writing the updated parameters as bf16 (round to nearest even, NaN as 0x7FC0, as
    /// <see cref="CpuAdam"/> and PyTorch cast) into <paramref name="bf16"/> in the same pass, unless it is empty: no second pass
    /// over the fp32 weights. A skipped block's bf16 is its unchanged parameters'.
    /// </summary>
    public static BlockwiseAdamReport Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<byte> mCodes, Span<float> mScales,
        Span<byte> vCodes, Span<float> vScales, Span<ushort> bf16, int step, AdamHyperParameters hp, float gradScale = 1f, int threads = 1) =>
        Step(parameters, gradients, mCodes, mScales, vCodes, vScales, bf16, step, hp, gradScale, threads, Kernel);

    /// <summary>As the bf16 span overload, on the given kernel (tests compare the kernels; it must run here).</summary>
    internal static BlockwiseAdamReport Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<byte> mCodes, Span<float> mScales,
        Span<byte> vCodes, Span<float> vScales, Span<ushort> bf16, int step, AdamHyperParameters hp, float gradScale, int threads, BlockwiseKernel kernel)
    {
        int n = parameters.Length;
        long blocks = BlockwiseQuantization.Blocks(n);
        if (gradients.Length != n || mCodes.Length != n || vCodes.Length != n || mScales.Length != blocks || vScales.Length != blocks)
            throw new ArgumentException($"{n} parameters need {n} gradients and codes per moment and {blocks} scales per moment; got {gradients.Length} gradients, {mCodes.Length}/{vCodes.Length} codes, {mScales.Length}/{vScales.Length} scales.");
        if (!bf16.IsEmpty && bf16.Length != n)
            throw new ArgumentException($"{n} parameters need a bf16 copy of {n} elements (or none); got {bf16.Length}.", nameof(bf16));
        fixed (float* p = parameters)
        fixed (float* g = gradients)
        fixed (byte* mc = mCodes)
        fixed (float* ms = mScales)
        fixed (byte* vc = vCodes)
        fixed (float* vs = vScales)
        fixed (ushort* h = bf16)
            return Step(p, g, mc, ms, vc, vs, bf16.IsEmpty ? null : h, n, step, hp, gradScale, threads, kernel);
    }

    /// <summary>As the span overload, on <paramref name="count"/> elements at the given addresses (pinned by the caller).</summary>
    public static BlockwiseAdamReport Step(float* parameters, float* gradients, byte* mCodes, float* mScales, byte* vCodes, float* vScales,
        long count, int step, AdamHyperParameters hp, float gradScale, int threads) =>
        Step(parameters, gradients, mCodes, mScales, vCodes, vScales, null, count, step, hp, gradScale, threads);

    /// <summary>As the bf16 span overload, on <paramref name="count"/> elements at the given addresses; a null <paramref name="bf16"/> writes no copy.</summary>
    public static BlockwiseAdamReport Step(float* parameters, float* gradients, byte* mCodes, float* mScales, byte* vCodes, float* vScales,
        ushort* bf16, long count, int step, AdamHyperParameters hp, float gradScale, int threads) =>
        Step(parameters, gradients, mCodes, mScales, vCodes, vScales, bf16, count, step, hp, gradScale, threads, Kernel);

    private static BlockwiseAdamReport Step(float* parameters, float* gradients, byte* mCodes, float* mScales, byte* vCodes, float* vScales,
        ushort* bf16, long count, int step, AdamHyperParameters hp, float gradScale, int threads, BlockwiseKernel kernel)
    {
        ArgumentNullException.ThrowIfNull(hp);
        if (kernel > Kernel)
            throw new PlatformNotSupportedException($"The {kernel} kernel of the 8-bit Adam needs instructions this processor lacks; it runs {Kernel} at most.");
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        var k = Coefficients.For(step, hp, gradScale);
        long blocks = BlockwiseQuantization.Blocks(count);
        long chunks = (blocks + BlocksPerChunk - 1) / BlocksPerChunk;
        long skipped = 0, first = long.MaxValue;
        nint p = (nint)parameters, g = (nint)gradients, mc = (nint)mCodes, ms = (nint)mScales, vc = (nint)vCodes, vs = (nint)vScales, h = (nint)bf16;
        void Chunk(long c)
        {
            float* mBuffer = stackalloc float[BlockwiseQuantization.BlockSize];
            float* vBuffer = stackalloc float[BlockwiseQuantization.BlockSize];
            float* decoded = stackalloc float[2 * DecodedTable];
            long lastBlock = Math.Min(blocks, (c + 1) * BlocksPerChunk);
            for (long b = c * BlocksPerChunk; b < lastBlock; b++)
            {
                long start = b * BlockwiseQuantization.BlockSize;
                int n = (int)Math.Min(BlockwiseQuantization.BlockSize, count - start);
                uint key = StochasticRounding.BlockKey(step, StochasticRounding.BlockSeed(b, count));
                bool ok = UpdateBlock((float*)p + start, (float*)g + start, (byte*)mc + start, (float*)ms + b, (byte*)vc + start, (float*)vs + b, n, k, key, mBuffer, vBuffer,
                    decoded, h == 0 ? null : (ushort*)h + start, kernel);
                if (ok) continue;
                Interlocked.Increment(ref skipped);
                long seen;
                while (start < (seen = Interlocked.Read(ref first)) && Interlocked.CompareExchange(ref first, start, seen) != seen) { }
            }
        }
        // On the process's persistent workers, as CpuAdam's chunks (issue 13: Parallel.For's per-call wake-up of the pool); with
        // one thread or one chunk, on the caller alone.
        CpuWorkers.ForCores(threads).For(chunks, Chunk);
        return new BlockwiseAdamReport(skipped, skipped == 0 ? -1 : first);
    }

    /// <summary>
    /// The per-step constants, computed once in double precision as <see cref="CpuAdam"/> computes them; the GPU's 8-bit kernel
    /// takes the same ones, so both update alike.
    /// </summary>
    public readonly record struct Coefficients(float Decay, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float StepSize, float InvSqrtBias2, float Epsilon, float GradScale, int Step)
    {
        /// <summary>The constants of update <paramref name="step"/> (from 1) with the clipping factor <paramref name="gradScale"/>.</summary>
        public static Coefficients For(int step, AdamHyperParameters hp, float gradScale)
        {
            ArgumentNullException.ThrowIfNull(hp);
            ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
            double bias1 = 1 - Math.Pow(hp.Beta1, step);
            double bias2 = 1 - Math.Pow(hp.Beta2, step);
            return new Coefficients(
                (float)(1 - (double)hp.LearningRate * hp.WeightDecay),
                hp.Beta1, 1 - hp.Beta1, hp.Beta2, 1 - hp.Beta2,
                (float)(hp.LearningRate / bias1),
                (float)(1 / Math.Sqrt(bias2)),
                hp.Epsilon, gradScale, step);
        }
    }

    /// <summary>
    /// One block: new m and v into the buffers (and their extremes), then — only if every v is finite, which also
    /// catches NaN or ±∞ in g and g² overflowing — the parameter update and the requantisation. Returns whether it updated.
    /// </summary>
    private static bool UpdateBlock(float* p, float* g, byte* mc, float* ms, byte* vc, float* vs, int n, Coefficients k, uint key, float* mNew, float* vNew,
        float* decoded, ushort* h, BlockwiseKernel kernel)
    {
        DynamicQuantizationMap mMap = DynamicQuantizationMap.Signed, vMap = DynamicQuantizationMap.Unsigned;
        float mScale = *ms, vScale = *vs;
        float mMax = 0, mMin = 0, vMax = 0;
        bool finite = true;
        int i = 0;
        fixed (float* mTable = mMap.Values)
        fixed (float* vTable = vMap.Values)
        {
            if (kernel != BlockwiseKernel.Scalar)
            {
                // The block's old moments by code: value × scale for m, (value × scale)² for v, the float operations the
                // element-wise decode does, so 512 products per block replace a decode per element.
                float* mOld = decoded, vOld = decoded + DecodedTable;
                var extremes = new Extremes();
                if (kernel == BlockwiseKernel.Avx512Vbmi)
                    i = Moments512Vbmi(g, mc, vc, mScale, vScale, mNew, vNew, n, k, ref extremes);
                else if (kernel == BlockwiseKernel.Avx512)
                {
                    DecodeTables512(mTable, vTable, mScale, vScale, mOld, vOld);
                    i = Moments512(g, mc, vc, mOld, vOld, mNew, vNew, n, k, ref extremes);
                }
                else
                {
                    DecodeTables(mTable, vTable, mScale, vScale, mOld, vOld);
                    i = Moments(g, mc, vc, mOld, vOld, mNew, vNew, n, k, ref extremes);
                }
                finite = extremes.Finite.AsInt32() == Vector256<int>.AllBitsSet; // compared as integers: all-ones is a NaN as a float
                // From 0, as the scalar loop starts: lanes of m all −0 end −0, and Math.Max(0, −0) makes the block's scale +0, as
                // the scalar kernel's (a lane's −0 would have made it −0).
                for (int j = 0; j < 8; j++) { mMax = Math.Max(mMax, extremes.MaxM[j]); mMin = Math.Min(mMin, extremes.MinM[j]); vMax = Math.Max(vMax, extremes.MaxV[j]); }
            }
            for (; i < n; i++)
            {
                float gi = g[i] * k.GradScale;
                float m1 = k.Beta1 * (mTable[mc[i]] * mScale) + k.OneMinusBeta1 * gi;
                float r0 = vTable[vc[i]] * vScale;
                float v1 = k.Beta2 * (r0 * r0) + k.OneMinusBeta2 * gi * gi;
                finite &= v1 < float.PositiveInfinity;
                mMax = Math.Max(mMax, m1); mMin = Math.Min(mMin, m1); vMax = Math.Max(vMax, v1);
                mNew[i] = m1;
                vNew[i] = v1;
            }
        }
        if (!finite)
        {
            if (h != null) Bf16.Write(p, h, n);
            return false;
        }
        *ms = BlockwiseQuantization.ScaleOf(mMax, mMin);
        // v is coded by its square root (BlockwiseQuantization.QuantizeSecondMoment), so the scale is √max v.
        *vs = MathF.Sqrt(vMax);
        float mInv = *ms == 0 ? 0 : 1 / *ms, vInv = *vs == 0 ? 0 : 1 / *vs;
        // Codes are rounded stochastically (unbiased). To the nearest, a √v that moves less per step (≤ 0.05% at β2 = 0.999)
        // than half the map's gap (0.35–7% of the block's largest) keeps its code and so follows the block's scale, which
        // drifted 8-bit updates 3–7% above fp32's over 300 steps of steady or shrinking gradients (BlockwiseAdamTrackingTests);
        // tiny-gpt (500 steps) ended 4.5% below fp32 with both nearest, 0.85% above with only v stochastic, 0.05% below with both.
        if (kernel >= BlockwiseKernel.Avx512)
            UpdateAndQuantize512(p, mNew, vNew, mc, vc, h, n, k, mInv, vInv, key);
        else if (kernel == BlockwiseKernel.Avx2)
            UpdateAndQuantize(p, mNew, vNew, mc, vc, h, n, k, mInv, vInv, key);
        else
        {
            UpdateParameters(p, mNew, vNew, n, k);
            if (h != null) Bf16.Write(p, h, n);
            for (int j = 0; j < n; j++)
            {
                uint hash = StochasticRounding.ElementHash(key, j);
                mc[j] = mMap.QuantizeStochastic(mNew[j] * mInv, StochasticRounding.FirstMomentUniform(hash));
                vc[j] = vMap.QuantizeStochastic(MathF.Sqrt(vNew[j]) * vInv, StochasticRounding.SecondMomentUniform(hash));
            }
        }
        return true;
    }

    /// <summary>
    /// Pass 1's running extremes on eight lanes (element j of a block in lane j mod 8, in index order, in the AVX2 kernel);
    /// <see cref="Finite"/> is all-ones while every v is below +∞.
    /// </summary>
    private struct Extremes()
    {
        public Vector256<float> MaxM = Vector256<float>.Zero, MinM = Vector256<float>.Zero, MaxV = Vector256<float>.Zero, Finite = Vector256<float>.AllBitsSet;

        /// <summary>Eight new moments into the extremes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector256<float> m1, Vector256<float> v1)
        {
            Finite &= Vector256.LessThan(v1, Vector256.Create(float.PositiveInfinity));
            // vmaxps/vminps directly: Vector256.Max's IEEE NaN and ±0 handling costs several instructions, and a block with a NaN is skipped anyway.
            MaxM = Avx.Max(MaxM, m1); MinM = Avx.Min(MinM, m1); MaxV = Avx.Max(MaxV, v1);
        }

        /// <summary>Extremes found elsewhere (eight lanes of a wider kernel's) into these.</summary>
        public void Merge(Vector256<float> maxM, Vector256<float> minM, Vector256<float> maxV, Vector256<float> finite)
        {
            Finite &= finite;
            MaxM = Avx.Max(MaxM, maxM); MinM = Avx.Min(MinM, minM); MaxV = Avx.Max(MaxV, maxV);
        }
    }

    /// <summary>The block's decoded tables, eight codes at a time.</summary>
    private static void DecodeTables(float* mTable, float* vTable, float mScale, float vScale, float* mOld, float* vOld)
    {
        var msv = Vector256.Create(mScale); var vsv = Vector256.Create(vScale);
        for (int c = 0; c < DecodedTable; c += 8)
        {
            (Avx.LoadVector256(mTable + c) * msv).Store(mOld + c);
            Vector256<float> r0 = Avx.LoadVector256(vTable + c) * vsv;
            (r0 * r0).Store(vOld + c);
        }
    }

    /// <summary>
    /// Pass 1 on the block's whole groups of eight: new m and v into the buffers and the extremes; returns how many elements it did.
    /// Codes are looked up by scalar loads a few groups ahead, into the buffers the vector loop then reads and overwrites with
    /// the new moments: the look-ups run on the load and integer units, which this loop and the requantisation leave idle,
    /// where decoding in vector registers (two 8-entry lines and a ±1-ulp correction per moment, ten cross-lane permutes per
    /// eight codes) competed with the rest for the vector pipes.
    /// </summary>
    private static int Moments(float* g, byte* mc, byte* vc, float* mOld, float* vOld, float* mNew, float* vNew, int n, Coefficients k, ref Extremes extremes)
    {
        var b1 = Vector256.Create(k.Beta1); var c1 = Vector256.Create(k.OneMinusBeta1);
        var b2 = Vector256.Create(k.Beta2); var c2 = Vector256.Create(k.OneMinusBeta2);
        var gs = Vector256.Create(k.GradScale);
        int vectorEnd = n & ~7;
        for (int j = 0; j < Math.Min(LookAhead, vectorEnd); j += 8) Look(mc + j, vc + j, mOld, vOld, mNew + j, vNew + j);
        for (int i = 0; i < vectorEnd; i += 8)
        {
            if (i + LookAhead < vectorEnd) Look(mc + i + LookAhead, vc + i + LookAhead, mOld, vOld, mNew + i + LookAhead, vNew + i + LookAhead);
            Vector256<float> m0 = Avx.LoadVector256(mNew + i), v0 = Avx.LoadVector256(vNew + i);
            Vector256<float> gi = Avx.LoadVector256(g + i) * gs;
            Vector256<float> m1 = b1 * m0 + c1 * gi;
            Vector256<float> v1 = b2 * v0 + c2 * gi * gi;
            extremes.Add(m1, v1);
            m1.Store(mNew + i);
            v1.Store(vNew + i);
        }
        return vectorEnd;
    }

    /// <summary>Eight m and v codes looked up in the block's decoded tables (scalar loads; the codes read as one ulong each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Look(byte* mc, byte* vc, float* mOld, float* vOld, float* m, float* v)
    {
        ulong a = *(ulong*)mc, b = *(ulong*)vc;
        m[0] = mOld[(byte)a]; m[1] = mOld[(byte)(a >> 8)]; m[2] = mOld[(byte)(a >> 16)]; m[3] = mOld[(byte)(a >> 24)];
        m[4] = mOld[(byte)(a >> 32)]; m[5] = mOld[(byte)(a >> 40)]; m[6] = mOld[(byte)(a >> 48)]; m[7] = mOld[a >> 56];
        v[0] = vOld[(byte)b]; v[1] = vOld[(byte)(b >> 8)]; v[2] = vOld[(byte)(b >> 16)]; v[3] = vOld[(byte)(b >> 24)];
        v[4] = vOld[(byte)(b >> 32)]; v[5] = vOld[(byte)(b >> 40)]; v[6] = vOld[(byte)(b >> 48)]; v[7] = vOld[b >> 56];
    }

    /// <summary>
    /// The block's second pass, eight values at a time while m and v are still in L1: the parameter update, then both
    /// moments' codes rounded stochastically by arithmetic (<see cref="QuantizationVectors.StochasticRanks(Vector256{float}, in QuantizationVectors.StochasticTables, Vector256{float})"/>: no table, any
    /// scale, a subnormal one's ±∞ and NaN included), the uniforms from one hash of (block key, index) per element, packed together.
    /// </summary>
    private static void UpdateAndQuantize(float* p, float* m, float* v, byte* mc, byte* vc, ushort* h, int n, Coefficients k, float mInv, float vInv, uint key)
    {
        DynamicQuantizationMap mMap = DynamicQuantizationMap.Signed, vMap = DynamicQuantizationMap.Unsigned;
        var mt = new QuantizationVectors.StochasticTables(mMap);
        var vt = new QuantizationVectors.StochasticTables(vMap);
        var decay = Vector256.Create(k.Decay); var stepSize = Vector256.Create(k.StepSize);
        var invSqrtBias2 = Vector256.Create(k.InvSqrtBias2); var eps = Vector256.Create(k.Epsilon);
        var mi = Vector256.Create(mInv); var vi = Vector256.Create(vInv);
        Vector256<uint> counter = Vector256.Create(key) + Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7), eight = Vector256.Create(8u);
        int i = 0;
        for (; i <= n - 8; i += 8, counter += eight)
        {
            Vector256<float> m1 = Avx.LoadVector256(m + i), r1 = Vector256.Sqrt(Avx.LoadVector256(v + i));
            var denom = r1 * invSqrtBias2 + eps;
            Vector256<float> p1 = Avx.LoadVector256(p + i) * decay - stepSize * m1 / denom;
            p1.Store(p + i);
            if (h != null) Bf16.Pack(p1).Store(h + i);
            Vector256<float> ym = m1 * mi, yv = r1 * vi;
            var (um, uv) = StochasticRounding.Uniforms(StochasticRounding.Mix(counter));
            Vector256<int> rm = QuantizationVectors.StochasticRanks(ym, mt, um);
            Vector256<int> rv = QuantizationVectors.StochasticRanks(yv, vt, uv);
            Vector128<ulong> codes = QuantizationVectors.PackTwo(QuantizationVectors.Codes(rm, ym, signed: true), QuantizationVectors.Codes(rv, yv, signed: false));
            *(ulong*)(mc + i) = codes.ToScalar();
            *(ulong*)(vc + i) = codes.GetElement(1);
        }
        for (; i < n; i++)
        {
            float r = MathF.Sqrt(v[i]);
            p[i] = p[i] * k.Decay - k.StepSize * m[i] / (r * k.InvSqrtBias2 + k.Epsilon);
            if (h != null) h[i] = Bf16.Of(p[i]);
            uint hash = StochasticRounding.ElementHash(key, i);
            mc[i] = mMap.QuantizeStochastic(m[i] * mInv, StochasticRounding.FirstMomentUniform(hash));
            vc[i] = vMap.QuantizeStochastic(r * vInv, StochasticRounding.SecondMomentUniform(hash));
        }
    }

    private static void UpdateParameters(float* p, float* m, float* v, int n, Coefficients k)
    {
        int i = 0;
        if (Avx.IsSupported)
        {
            var decay = Vector256.Create(k.Decay); var stepSize = Vector256.Create(k.StepSize);
            var invSqrtBias2 = Vector256.Create(k.InvSqrtBias2); var eps = Vector256.Create(k.Epsilon);
            for (; i <= n - 8; i += 8)
            {
                var denom = Vector256.Sqrt(Avx.LoadVector256(v + i)) * invSqrtBias2 + eps;
                (Avx.LoadVector256(p + i) * decay - stepSize * Avx.LoadVector256(m + i) / denom).Store(p + i);
            }
        }
        for (; i < n; i++) p[i] = p[i] * k.Decay - k.StepSize * m[i] / (MathF.Sqrt(v[i]) * k.InvSqrtBias2 + k.Epsilon);
    }

    /// <summary>fp32 → bf16 bits as <see cref="CpuAdam"/> writes them: round to nearest even on the bits, NaN as the quiet NaN 0x7FC0.</summary>
    private static partial class Bf16
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static ushort Of(float x)
        {
            if (float.IsNaN(x)) return 0x7FC0;
            uint bits = BitConverter.SingleToUInt32Bits(x);
            return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
        }

        /// <summary>Eight values' bf16 bits, packed into 128 bits in order.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<ushort> Pack(Vector256<float> x)
        {
            Vector256<uint> bits = x.AsUInt32();
            Vector256<uint> rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >>> 16) & Vector256<uint>.One)) >>> 16;
            Vector256<int> words = Vector256.ConditionalSelect(Vector256.Equals(x, x).AsUInt32(), rounded, Vector256.Create(0x7FC0u)).AsInt32();
            // Each lane holds 0 … 65535, so the saturating pack is exact; per 128-bit lane it leaves the four words in the low
            // 64 bits, and one cross-lane permute brings the two halves together.
            Vector256<ushort> packed = Avx2.PackUnsignedSaturate(words, words);
            return Avx2.Permute4x64(packed.AsUInt64(), 0b_10_00).GetLower().AsUInt16();
        }

        /// <summary>Writes the bf16 bits of p[0 … n) to h.</summary>
        public static void Write(float* p, ushort* h, int n)
        {
            int i = 0;
            if (Avx2.IsSupported)
                for (; i <= n - 8; i += 8) Pack(Avx.LoadVector256(p + i)).Store(h + i);
            for (; i < n; i++) h[i] = Of(p[i]);
        }
    }
}
