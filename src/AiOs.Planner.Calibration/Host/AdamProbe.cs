using System.Diagnostics;
using System.Runtime.InteropServices;
using AiOs.Planner.IO;
using AiOs.Planner.Optim;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Host;

/// <summary>Which <see cref="CpuAdam"/> pass the Adam probe times.</summary>
public enum AdamProbeKernel
{
    /// <summary><c>CpuAdam.Step</c>: fp32 gradients, no bf16 copy (28 B per parameter moved: p, g, m, v read, p, m, v written); fp32 training and DeepSpeed's CPU Adam.</summary>
    Fp32Gradients,
    /// <summary>
    /// <c>CpuAdam.StepBf16Gradients</c> writing the bf16 copy (28 B per parameter moved): the engine's bf16 update with its state in RAM.
    /// </summary>
    Bf16Gradients,
    /// <summary>
    /// <c>BlockwiseAdam.Step</c> with block-wise 8-bit moments writing the bf16 copy, as the engine steps <c>--optimizer-state 8bit</c>
    /// (fp32 master and gradients read, one code per moment, bf16 copy written: 18 B per parameter plus the scales).
    /// </summary>
    EightBit,
    /// <summary>
    /// <c>CpuAdam.Step</c> on fp32 gradients writing the fp16 copy (30 B per parameter moved: p, g, m, v read, p, m, v and the
    /// fp16 copy written): the engine's fp16 update with its state in RAM (fp16 training keeps fp32 gradient sums).
    /// </summary>
    Fp16Copy,
}

/// <summary>Parameters per second that the engine's <see cref="CpuAdam"/> updates, on fp32 or (as the engine's bf16 training) bf16 gradients.</summary>
public static unsafe class AdamProbe
{
    /// <summary>
    /// Parameters per call in the bf16 probe: the engine updates one sub-group (at most a unit) per call, and a call's
    /// threads start and finish together, so a figure from one huge array overstates it (gpt2-xl's 31 M-parameter
    /// layers updated at 4.04 G/s on the H100 VM, where one 128 M array measured 4.96 G/s).
    /// </summary>
    public const long EngineSubGroup = 32L << 20;

    /// <summary>Steps <paramref name="parameters"/> parameters on fp32 gradients in one call for about <paramref name="duration"/> on <paramref name="threads"/> threads; returns parameters per second.</summary>
    public static double Measure(long parameters, int threads, TimeSpan duration, CancellationToken ct) =>
        Measure(AdamProbeKernel.Fp32Gradients, parameters, parameters, threads, duration, ct);

    /// <summary>
    /// Steps <paramref name="parameters"/> parameters with <paramref name="kernel"/>, <paramref name="subGroup"/> per call in turn
    /// (as the engine steps its sub-groups), for about <paramref name="duration"/> on <paramref name="threads"/> threads; returns parameters per second.
    /// </summary>
    public static double Measure(AdamProbeKernel kernel, long parameters, long subGroup, int threads, TimeSpan duration, CancellationToken ct)
    {
        subGroup = WholeBlocks(kernel, subGroup);
        using var state = new ProbeState(kernel, parameters);
        return Time(state, SubGroups(parameters, subGroup), threads, duration, ct);
    }

    /// <summary>
    /// As <see cref="Measure(AdamProbeKernel, long, long, int, TimeSpan, CancellationToken)"/> on one thread, then on
    /// <paramref name="threads"/>, over one state (a state many times the last-level cache is made once, not twice);
    /// <paramref name="betweenRuns"/> is called between the two (a progress step).
    /// </summary>
    public static (double One, double All) MeasureOneAndAll(AdamProbeKernel kernel, long parameters, long subGroup, int threads, TimeSpan duration, CancellationToken ct,
        Action? betweenRuns = null)
    {
        subGroup = WholeBlocks(kernel, subGroup);
        using var state = new ProbeState(kernel, parameters);
        var groups = SubGroups(parameters, subGroup);
        // One warm-up on every thread (page faults, JIT) serves both runs: a state of many caches walked on one thread took seconds.
        WarmUp(state, groups, threads);
        double one = Time(state, groups, 1, duration, ct, warm: true);
        betweenRuns?.Invoke();
        return (one, threads == 1 ? one : Time(state, groups, threads, duration, ct, warm: true));
    }

    /// <summary>
    /// Parameters per second at each of <paramref name="subGroups"/> per call (in order, each as <see cref="Measure(AdamProbeKernel, long, long, int, TimeSpan, CancellationToken)"/>)
    /// over one state of <paramref name="parameters"/>, warmed once: how the rate depends on the call's size (a model's units) apart
    /// from the state's. <paramref name="afterEach"/> gets each size and its rate as it is measured.
    /// </summary>
    public static IReadOnlyList<(long SubGroup, double Rate)> MeasureSubGroups(AdamProbeKernel kernel, long parameters, IReadOnlyList<long> subGroups, int threads,
        TimeSpan duration, CancellationToken ct, Action<long, double>? afterEach = null)
    {
        ArgumentNullException.ThrowIfNull(subGroups);
        if (subGroups.Count == 0 || subGroups.Any(g => g < 1))
            throw new ArgumentException("Give at least one sub-group size, each of one parameter or more.", nameof(subGroups));
        using var state = new ProbeState(kernel, parameters);
        WarmUp(state, SubGroups(parameters, parameters), threads);
        var rates = new List<(long, double)>(subGroups.Count);
        // Sizes that round to the same call (8-bit blocks, the state's bound) are timed once.
        foreach (long size in subGroups.Select(g => CallSize(kernel, g, parameters)).Distinct())
        {
            double rate = Time(state, SubGroups(parameters, size), threads, duration, ct, warm: true);
            rates.Add((size, rate));
            afterEach?.Invoke(size, rate);
        }
        return rates;
    }

    /// <summary>Bytes <paramref name="kernel"/> reads and writes per parameter (its remarks in <see cref="AdamProbeKernel"/>; the 8-bit scales left out).</summary>
    public static int BytesMoved(AdamProbeKernel kernel) => kernel switch
    {
        AdamProbeKernel.EightBit => Simulation.StepCosts.EightBitAdamHostBytesPerParameter,
        AdamProbeKernel.Fp16Copy => Simulation.StepCosts.Fp16AdamHostBytesPerParameter,
        _ => Simulation.StepCosts.AdamHostBytesPerParameter,
    };

    /// <summary>Bytes of state per parameter <see cref="ProbeState"/> holds for <paramref name="kernel"/>: fp32 master, m, v and gradient (bf16 gradient and copy on the bf16 path; the fp16 copy beside them on the fp16 path; one code per moment with 8-bit state).</summary>
    public static long StateBytesPerParameter(AdamProbeKernel kernel) => kernel switch
    {
        AdamProbeKernel.EightBit => 14,
        AdamProbeKernel.Fp16Copy => 18,
        _ => 16,
    };

    /// <summary>Parameters per call <see cref="MeasureSubGroups"/> times for <paramref name="subGroup"/> over a state of <paramref name="parameters"/>: whole 8-bit blocks, at most the state.</summary>
    public static long CallSize(AdamProbeKernel kernel, long subGroup, long parameters) => Math.Min(WholeBlocks(kernel, subGroup), parameters);

    /// <summary>8-bit sub-groups hold whole blocks (as the engine's do), so each starts its own scales at offset / block size.</summary>
    private static long WholeBlocks(AdamProbeKernel kernel, long subGroup) =>
        kernel == AdamProbeKernel.EightBit
            ? Math.Max(BlockwiseQuantization.BlockSize, subGroup / BlockwiseQuantization.BlockSize * BlockwiseQuantization.BlockSize)
            : subGroup;

    /// <summary>Updates <paramref name="groups"/> in turn, once as a warm-up, then for about <paramref name="duration"/> and at least one whole pass; parameters per second.</summary>
    private static double Time(ProbeState state, IReadOnlyList<(long Offset, int Count)> groups, int threads, TimeSpan duration, CancellationToken ct, bool warm = false)
    {
        var hp = new AdamHyperParameters();
        int step = 1;
        if (!warm) WarmUp(state, groups, threads);
        long updated = 0;
        int next = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration || updated < state.Parameters)
        {
            ct.ThrowIfCancellationRequested();
            var (offset, count) = groups[next];
            if (++next == groups.Count)
            {
                next = 0;
                step++;
            }
            state.Step(offset, count, step, hp, threads);
            updated += count;
        }
        return updated / sw.Elapsed.TotalSeconds;
    }

    /// <summary>One update of every sub-group (step 1): page faults and JIT out of the timings.</summary>
    private static void WarmUp(ProbeState state, IReadOnlyList<(long Offset, int Count)> groups, int threads)
    {
        var hp = new AdamHyperParameters();
        foreach (var (offset, count) in groups) state.Step(offset, count, 1, hp, threads);
    }

    /// <summary>Runs of at most <paramref name="subGroup"/> parameters covering <paramref name="parameters"/>, in order.</summary>
    internal static IReadOnlyList<(long Offset, int Count)> SubGroups(long parameters, long subGroup)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameters, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(subGroup, 1);
        long size = Math.Min(subGroup, int.MaxValue);
        var groups = new List<(long, int)>();
        for (long at = 0; at < parameters; at += size) groups.Add((at, (int)Math.Min(size, parameters - at)));
        return groups;
    }

    /// <summary>
    /// The probe's state, in page-aligned native buffers advised to huge pages as the engine's host state and pinned gradient
    /// store are (<c>HostBuffer</c>; a GPU host page-locks the gradients and the bf16 copy; the CPU reads page-locked memory at
    /// the same speed, so plain buffers stand in).
    /// </summary>
    internal sealed class ProbeState : IDisposable
    {
        private readonly AlignedBuffer _master, _m, _v, _gradients;
        private readonly AlignedBuffer? _bf16, _fp16, _mScales, _vScales;

        /// <summary>Allocates and fills <paramref name="parameters"/> parameters' state for <paramref name="kernel"/> (seeded, so reruns match).</summary>
        public ProbeState(AdamProbeKernel kernel, long parameters)
        {
            Kernel = kernel;
            Parameters = parameters;
            Bytes Of(int width) => new Bytes(parameters * width).AlignUp(AlignedBuffer.Alignment);
            bool eightBit = kernel == AdamProbeKernel.EightBit;
            _master = HugePages.Allocate(Of(sizeof(float)));
            // 8-bit: m and v are one code per value, with one fp32 scale per block of each sub-group (as the engine's sub-groups start blocks).
            _m = HugePages.Allocate(Of(eightBit ? sizeof(byte) : sizeof(float)));
            _v = HugePages.Allocate(Of(eightBit ? sizeof(byte) : sizeof(float)));
            bool bf16 = kernel == AdamProbeKernel.Bf16Gradients;
            _gradients = HugePages.Allocate(Of(bf16 ? sizeof(ushort) : sizeof(float)));
            _bf16 = bf16 || eightBit ? HugePages.Allocate(Of(sizeof(ushort))) : null;
            _fp16 = kernel == AdamProbeKernel.Fp16Copy ? HugePages.Allocate(Of(sizeof(ushort))) : null;
            if (eightBit)
            {
                var scales = new Bytes(BlockwiseQuantization.Blocks(parameters) * sizeof(float)).AlignUp(AlignedBuffer.Alignment);
                _mScales = new AlignedBuffer(scales);
                _vScales = new AlignedBuffer(scales);
                Zero(_mScales);
                Zero(_vScales);
            }
            // Seeded by each element's index (SplitMix64), in parallel: a state of many times the last-level cache fills in
            // well under a second, and reruns at any thread count hold the same values.
            nint master = _master.Address, gradients = _gradients.Address;
            long chunks = (parameters + FillChunk - 1) / FillChunk;
            Parallel.For(0L, chunks, c =>
            {
                float* p = (float*)master;
                float* gf = (float*)gradients;
                ushort* gh = (ushort*)gradients;
                long end = Math.Min(parameters, (c + 1) * FillChunk);
                for (long i = c * FillChunk; i < end; i++)
                {
                    p[i] = Uniform(2 * (ulong)i) - 0.5f;
                    float g = (Uniform(2 * (ulong)i + 1) - 0.5f) * 1e-2f;
                    // bf16 gradients are the top half of an fp32 (what a bf16 tensor holds).
                    if (bf16) gh[i] = (ushort)(BitConverter.SingleToUInt32Bits(g) >> 16);
                    else gf[i] = g;
                }
            });
            Zero(_m);
            Zero(_v);
            if (_bf16 is not null) Zero(_bf16);
            if (_fp16 is not null) Zero(_fp16);
        }

        /// <summary>Zeroes all of <paramref name="buffer"/> (a span stops at 2 GiB; a state many times a large cache does not).</summary>
        private static void Zero(AlignedBuffer buffer) => NativeMemory.Clear((void*)buffer.Address, (nuint)buffer.Length);

        /// <summary>Elements each worker of the fill takes at a time.</summary>
        private const long FillChunk = 1L << 20;

        /// <summary>A value in [0, 1) from a 64-bit counter: SplitMix64's finaliser, its top 24 bits.</summary>
        private static float Uniform(ulong counter)
        {
            ulong z = counter * 0x9E3779B97F4A7C15UL + 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (((z ^ (z >> 31)) >> 40) & 0xFFFFFF) * (1f / (1 << 24));
        }

        /// <summary>The kernel each <see cref="Step"/> runs.</summary>
        public AdamProbeKernel Kernel { get; }

        /// <summary>Parameters held.</summary>
        public long Parameters { get; }

        public Span<float> Master(long offset, int count) => new((float*)_master.Address + offset, count);
        /// <summary>The fp32 first moments; empty for the 8-bit kernel (its moments are codes).</summary>
        public Span<float> M(long offset, int count) => Kernel == AdamProbeKernel.EightBit ? [] : new((float*)_m.Address + offset, count);
        /// <summary>The fp32 second moments; empty for the 8-bit kernel.</summary>
        public Span<float> V(long offset, int count) => Kernel == AdamProbeKernel.EightBit ? [] : new((float*)_v.Address + offset, count);
        /// <summary>The 8-bit kernel's first-moment codes; empty for the fp32 kernels.</summary>
        public Span<byte> MCodes(long offset, int count) => Kernel == AdamProbeKernel.EightBit ? new((byte*)_m.Address + offset, count) : [];
        /// <summary>The fp32 gradients (fp32 and 8-bit kernels).</summary>
        public Span<float> Fp32Gradients(long offset, int count) => Kernel != AdamProbeKernel.Bf16Gradients ? new((float*)_gradients.Address + offset, count) : [];
        /// <summary>The bf16 gradient bits (bf16 kernel only).</summary>
        public Span<ushort> Bf16Gradients(long offset, int count) => Kernel == AdamProbeKernel.Bf16Gradients ? new((ushort*)_gradients.Address + offset, count) : [];
        /// <summary>The fp16 copy the fp16 kernel writes; empty for the others.</summary>
        public Span<Half> Fp16Copy(long offset, int count) => _fp16 is null ? [] : new((Half*)_fp16.Address + offset, count);
        /// <summary>The bf16 copy the bf16 and 8-bit kernels write; empty for the fp32 and fp16 kernels.</summary>
        public Span<ushort> Bf16Copy(long offset, int count) => _bf16 is null ? [] : new((ushort*)_bf16.Address + offset, count);

        /// <summary>Update <paramref name="step"/> of the <paramref name="count"/> parameters from <paramref name="offset"/> with <see cref="Kernel"/>.</summary>
        public void Step(long offset, int count, int step, AdamHyperParameters hp, int threads)
        {
            if (Kernel == AdamProbeKernel.EightBit)
            {
                // Offsets are whole sub-groups, each a multiple of the block size but the last: a sub-group's blocks start at offset / block size.
                if (offset % BlockwiseQuantization.BlockSize != 0)
                    throw new ArgumentException($"an 8-bit sub-group starts on a block boundary ({BlockwiseQuantization.BlockSize} values); offset {offset} does not.", nameof(offset));
                long block = offset / BlockwiseQuantization.BlockSize;
                BlockwiseAdam.Step((float*)_master.Address + offset, (float*)_gradients.Address + offset, (byte*)_m.Address + offset, (float*)_mScales!.Address + block,
                    (byte*)_v.Address + offset, (float*)_vScales!.Address + block, (ushort*)_bf16!.Address + offset, count, step, hp, 1f, threads);
            }
            else if (Kernel == AdamProbeKernel.Bf16Gradients)
                CpuAdam.StepBf16Gradients(Master(offset, count), Bf16Gradients(offset, count), M(offset, count), V(offset, count), Bf16Copy(offset, count), step, hp, threads);
            else if (Kernel == AdamProbeKernel.Fp16Copy)
                CpuAdam.Step(Master(offset, count), Fp32Gradients(offset, count), M(offset, count), V(offset, count), Fp16Copy(offset, count), step, hp, threads);
            else
                CpuAdam.Step((float*)_master.Address + offset, (float*)_gradients.Address + offset, (float*)_m.Address + offset, (float*)_v.Address + offset, count, step, hp, threads);
        }

        public void Dispose()
        {
            _master.Dispose();
            _m.Dispose();
            _v.Dispose();
            _gradients.Dispose();
            _bf16?.Dispose();
            _fp16?.Dispose();
            _mScales?.Dispose();
            _vScales?.Dispose();
        }
    }
}
