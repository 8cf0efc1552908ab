using AiOs.Planner.Optim;
using BenchmarkDotNet.Attributes;

namespace AiOs.Planner.Benchmarks;

/// <summary>
/// Issue 15's CPU target: the 8-bit AdamW update (<see cref="BlockwiseAdam"/>) at least as many parameters per second
/// as the fp32 <see cref="CpuAdam"/> on the same sizes and threads. Parameters per second = N / mean time.
/// </summary>
public class OptimizerStateBenchmarks
{
    private static readonly AdamHyperParameters Hp = new();

    private float[] _p = null!, _g = null!, _m = null!, _v = null!, _mScales = null!, _vScales = null!;
    private byte[] _mCodes = null!, _vCodes = null!;
    private ushort[] _bf16 = null!;
    /// <summary>The master split (<c>--master-weights split</c>): high halves (the bf16 parameters) and remainders.</summary>
    private ushort[] _hi = null!;
    private short[] _lo = null!;
    private int _step;

    /// <summary>Parameters per update: 1 M (the state fits in the caches) and 16 M (it does not; memory-bound as in training).</summary>
    [Params(1 << 20, 1 << 24)]
    public int N { get; set; }

    /// <summary>Threads: one, and every core of this machine.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(15);
        _p = new float[N]; _g = new float[N]; _m = new float[N]; _v = new float[N];
        for (int i = 0; i < N; i++) { _p[i] = (float)rng.NextDouble(); _g[i] = (float)(rng.NextDouble() - 0.5) * 1e-3f; }
        _mCodes = new byte[N]; _vCodes = new byte[N]; _bf16 = new ushort[N];
        _mScales = new float[BlockwiseQuantization.Blocks(N)]; _vScales = new float[BlockwiseQuantization.Blocks(N)];
        // Realistic moments: a few steps so codes and scales are spread over the maps.
        for (_step = 1; _step <= 3; _step++)
        {
            CpuAdam.Step(_p, _g, _m, _v, _step, Hp, Threads);
            BlockwiseAdam.Step(_p, _g, _mCodes, _mScales, _vCodes, _vScales, _step, Hp, 1f, Threads);
        }
        _hi = new ushort[N]; _lo = new short[N];
        MasterSplit.Split(_p, _hi, _lo);
    }

    /// <summary>Runs <paramref name="body"/>(start, count) over 1 M-element chunks on <see cref="Threads"/> threads, as the engine's Chunked.For (on the same workers).</summary>
    private void Chunks(Action<int, int> body)
    {
        const int chunk = 1 << 20;
        CpuWorkers.ForCores(Threads).For((N + chunk - 1) / chunk, c => body((int)c * chunk, Math.Min(chunk, N - (int)c * chunk)));
    }

    /// <summary>
    /// fp32 AdamW with a split master, as the engine steps a swapped sub-group: master = join(hi, lo), the update (the high
    /// half is written by the split, not the kernel's nearest-even copy), then hi and lo from the new master.
    /// </summary>
    [Benchmark]
    public void Fp32SplitMaster()
    {
        Chunks((start, count) => MasterSplit.Join(_hi.AsSpan(start, count), _lo.AsSpan(start, count), _p.AsSpan(start, count)));
        CpuAdam.Step(_p, _g, _m, _v, _step, Hp, Threads);
        Chunks((start, count) => MasterSplit.Split(_p.AsSpan(start, count), _hi.AsSpan(start, count), _lo.AsSpan(start, count)));
    }

    /// <summary>8-bit AdamW with a split master, as <see cref="Fp32SplitMaster"/>.</summary>
    [Benchmark]
    public void EightBitSplitMaster()
    {
        Chunks((start, count) => MasterSplit.Join(_hi.AsSpan(start, count), _lo.AsSpan(start, count), _p.AsSpan(start, count)));
        BlockwiseAdam.Step(_p, _g, _mCodes, _mScales, _vCodes, _vScales, _step, Hp, 1f, Threads);
        Chunks((start, count) => MasterSplit.Split(_p.AsSpan(start, count), _hi.AsSpan(start, count), _lo.AsSpan(start, count)));
    }

    /// <summary>fp32 AdamW: reads p, g, m, v and writes p, m, v (28 bytes per parameter).</summary>
    [Benchmark(Baseline = true)]
    public void Fp32CpuAdam() => CpuAdam.Step(_p, _g, _m, _v, _step, Hp, Threads);

    /// <summary>8-bit AdamW: reads p, g and the two codes and writes p and the codes (16 bytes per parameter plus scales).</summary>
    [Benchmark]
    public BlockwiseAdamReport EightBitBlockwiseAdam() => BlockwiseAdam.Step(_p, _g, _mCodes, _mScales, _vCodes, _vScales, _step, Hp, 1f, Threads);

    /// <summary>fp32 AdamW writing the bf16 copy in its pass, as the engine steps fp32 state for bf16 training.</summary>
    [Benchmark]
    public void Fp32CpuAdamWithBf16() => CpuAdam.Step(_p, _g, _m, _v, _bf16, _step, Hp, Threads);

    /// <summary>8-bit AdamW writing the bf16 copy in its pass, as the engine steps 8-bit state for bf16 training.</summary>
    [Benchmark]
    public BlockwiseAdamReport EightBitBlockwiseAdamWithBf16() => BlockwiseAdam.Step(_p, _g, _mCodes, _mScales, _vCodes, _vScales, _bf16, _step, Hp, 1f, Threads);

    /// <summary>
    /// The engine's 8-bit step before the copy was fused (to 2026-12-05): the update, then a second pass that rounds the
    /// master to bf16 element by element in parallel chunks (the loop of PrecisionCast.ToBf16, which this project cannot reference).
    /// </summary>
    [Benchmark]
    public void EightBitThenBf16Pass()
    {
        BlockwiseAdam.Step(_p, _g, _mCodes, _mScales, _vCodes, _vScales, _step, Hp, 1f, Threads);
        const int chunk = 1 << 16;
        float[] p = _p;
        ushort[] h = _bf16;
        CpuWorkers.ForCores(Threads).For((p.Length + chunk - 1) / chunk, c =>
        {
            int end = (int)Math.Min(p.Length, (c + 1) * chunk);
            for (int i = (int)c * chunk; i < end; i++)
            {
                uint b = BitConverter.SingleToUInt32Bits(p[i]);
                h[i] = float.IsNaN(p[i]) ? (ushort)0x7FC0 : (ushort)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
            }
        });
    }
}

/// <summary>The quantiser's map look-up: the bucket table with AVX2 gathers against a scalar binary search on the 256 values.</summary>
public class QuantizationLookupBenchmarks
{
    private const int N = 1 << 20;
    private readonly float[] _values = new float[N];
    private readonly byte[] _codes = new byte[N];
    private readonly float[] _scales = new float[BlockwiseQuantization.Blocks(N)];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(2);
        for (int i = 0; i < N; i++) _values[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, -4 * rng.NextDouble()));
    }

    /// <summary>What the kernel uses: one table read, one threshold compare, eight values per AVX2 step.</summary>
    [Benchmark]
    public void BucketTable() => BlockwiseQuantization.Quantize(_values, _codes, _scales, DynamicQuantizationMap.Signed);

    /// <summary>The textbook alternative: per value, a binary search for the nearest of the 256 sorted map values.</summary>
    [Benchmark(Baseline = true)]
    public void BinarySearch()
    {
        ReadOnlySpan<float> map = DynamicQuantizationMap.Signed.Values;
        for (int start = 0; start < N; start += BlockwiseQuantization.BlockSize)
        {
            float max = 0, min = 0;
            for (int i = start; i < start + BlockwiseQuantization.BlockSize; i++) { max = Math.Max(max, _values[i]); min = Math.Min(min, _values[i]); }
            float inv = 1 / (max >= -min ? max : min);
            _scales[start / BlockwiseQuantization.BlockSize] = max >= -min ? max : min;
            for (int i = start; i < start + BlockwiseQuantization.BlockSize; i++)
            {
                float y = _values[i] * inv;
                int lo = 0, hi = 255;
                while (lo < hi)
                {
                    int mid = (lo + hi) >> 1;
                    if (map[mid] < y) lo = mid + 1; else hi = mid;
                }
                _codes[i] = (byte)(lo > 0 && y - map[lo - 1] <= map[lo] - y ? lo - 1 : lo);
            }
        }
    }
}

/// <summary>
/// Stopwatch timings of the two updates and of the quantiser alone, interleaved round by round so a busy machine hurts
/// all alike; reports the median and the best of the rounds, and the median of the per-round 8-bit / fp32 rate ratios.
/// </summary>
public static class OptimizerStateQuick
{
    private const int Rounds = 15;

    public static void Run(int n, int threads)
    {
        var b = new OptimizerStateBenchmarks { N = n, Threads = threads };
        b.Setup();
        var values = new float[n];
        var rng = new Random(2);
        for (int i = 0; i < n; i++) values[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, -4 * rng.NextDouble()));
        var codes = new byte[n];
        var scales = new float[BlockwiseQuantization.Blocks(n)];
        double[] fp32 = new double[Rounds], eight = new double[Rounds], quantise = new double[Rounds], ratio = new double[Rounds];
        double[] fp32Cpu = new double[Rounds], eightCpu = new double[Rounds], cpuRatio = new double[Rounds];
        double[] fp32Bf16 = new double[Rounds], eightBf16 = new double[Rounds], eightThenPass = new double[Rounds], bf16Ratio = new double[Rounds];
        double[] fp32Split = new double[Rounds], eightSplit = new double[Rounds];
        var watch = new System.Diagnostics.Stopwatch();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        // Process CPU seconds per kernel as well as wall seconds: on a VM shared with other builds the wall time includes
        // the time the threads waited for a core; the CPU time does not (it still includes cache and memory contention).
        TimeSpan Cpu() { process.Refresh(); return process.TotalProcessorTime; }
        for (int round = 0; round < Rounds; round++)
        {
            var cpu = Cpu(); watch.Restart(); b.Fp32CpuAdam(); fp32[round] = watch.Elapsed.TotalSeconds; fp32Cpu[round] = (Cpu() - cpu).TotalSeconds;
            cpu = Cpu(); watch.Restart(); b.EightBitBlockwiseAdam(); eight[round] = watch.Elapsed.TotalSeconds; eightCpu[round] = (Cpu() - cpu).TotalSeconds;
            watch.Restart(); BlockwiseQuantization.Quantize(values, codes, scales, DynamicQuantizationMap.Signed); quantise[round] = watch.Elapsed.TotalSeconds;
            ratio[round] = fp32[round] / eight[round];
            watch.Restart(); b.Fp32CpuAdamWithBf16(); fp32Bf16[round] = watch.Elapsed.TotalSeconds;
            watch.Restart(); b.EightBitBlockwiseAdamWithBf16(); eightBf16[round] = watch.Elapsed.TotalSeconds;
            watch.Restart(); b.EightBitThenBf16Pass(); eightThenPass[round] = watch.Elapsed.TotalSeconds;
            watch.Restart(); b.Fp32SplitMaster(); fp32Split[round] = watch.Elapsed.TotalSeconds;
            watch.Restart(); b.EightBitSplitMaster(); eightSplit[round] = watch.Elapsed.TotalSeconds;
            bf16Ratio[round] = fp32Bf16[round] / eightBf16[round];
            cpuRatio[round] = fp32Cpu[round] / eightCpu[round];
        }
        static double Median(double[] x) { var s = x.Order().ToArray(); return s[s.Length / 2]; }
        string Rate(double[] t) => $"{n / Median(t) / 1e6:0} (best {n / t.Min() / 1e6:0})";
        Console.WriteLine($"N {n:N0}, {threads} thread(s), median (best) of {Rounds} interleaved rounds, M/s: fp32 CpuAdam {Rate(fp32)}; " +
            $"8-bit BlockwiseAdam {Rate(eight)}; 8-bit / fp32 rate, median of rounds {Median(ratio):0.00}; quantise alone {Rate(quantise)}");
        Console.WriteLine($"  with the bf16 copy, as the engine steps, M/s: fp32 {Rate(fp32Bf16)}; 8-bit, copy in its pass {Rate(eightBf16)}; " +
            $"8-bit then a bf16 pass (before) {Rate(eightThenPass)}; 8-bit / fp32, median of rounds {Median(bf16Ratio):0.00}");
        Console.WriteLine($"  split master (join, update, split), M/s: fp32 {Rate(fp32Split)}; 8-bit {Rate(eightSplit)} (against the bf16-copy rates above)");
        // Per CPU-second of each thread: N / (CPU seconds / threads), the rate the threads would reach with the cores to themselves.
        string CpuRate(double[] t) => $"{n / (Median(t) / threads) / 1e6:0}";
        Console.WriteLine($"  by CPU time, M/s per {threads} thread(s): fp32 {CpuRate(fp32Cpu)}; 8-bit {CpuRate(eightCpu)}; 8-bit / fp32, median of rounds {Median(cpuRatio):0.00}; load {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?")}");
    }
}
