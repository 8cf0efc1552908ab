using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using AiOs.Planner.Optim;
using BenchmarkDotNet.Attributes;

namespace AiOs.Planner.Benchmarks;

/// <summary>
/// Issue 16: CPU Adam against the machine's memory bandwidth. A STREAM-style copy and triad over arrays far
/// larger than the last-level cache, on every core, give the bandwidth; one AdamW step over the same element
/// count gives Adam's rate. Bytes are counted as STREAM counts them (each array read or written once, no
/// write-allocate traffic): copy 8 B per element, triad 12 B, Adam 28 B (read p, g, m, v; write p, m, v as
/// fp32) and 30 B with the bf16 copy (+2 B written).
/// </summary>
public class CpuAdamBenchmarks
{
    /// <summary>Bytes Adam touches per parameter without and with the bf16 copy.</summary>
    public const int AdamBytes = 7 * sizeof(float), AdamBf16Bytes = AdamBytes + sizeof(ushort);

    /// <summary>Elements per array: 32 Mi floats = 128 MiB each, four times a 32 MiB L3 per array.</summary>
    [Params(32 * 1024 * 1024)]
    public int Elements { get; set; } = 32 * 1024 * 1024;

    /// <summary>Threads for every kernel (default: every core).</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;

    // Pinned (on the pinned-object heap) so the spans handed to CpuAdam are pinned cheaply.
    private float[] _a = [], _b = [], _c = [], _d = [];
    private ushort[] _h = [], _gh = [];
    private int _step;
    private readonly AdamHyperParameters _hp = new() { LearningRate = 1e-4f };

    [GlobalSetup]
    public void Setup()
    {
        _a = GC.AllocateUninitializedArray<float>(Elements, pinned: true);
        _b = GC.AllocateUninitializedArray<float>(Elements, pinned: true);
        _c = GC.AllocateUninitializedArray<float>(Elements, pinned: true);
        _d = GC.AllocateUninitializedArray<float>(Elements, pinned: true);
        _h = GC.AllocateUninitializedArray<ushort>(Elements, pinned: true);
        _gh = GC.AllocateUninitializedArray<ushort>(Elements, pinned: true);
        // Touch every page (first-touch on the threads that will use them) with plausible values.
        ForChunks(Elements, Threads, (s, n) =>
        {
            for (int i = s; i < s + n; i++) { _a[i] = 0.01f * (i % 97); _b[i] = 1e-3f * (i % 13 - 6); _c[i] = 0; _d[i] = 0; _h[i] = 0; _gh[i] = (ushort)(BitConverter.SingleToUInt32Bits(_b[i]) >> 16); }
        });
    }

    [GlobalCleanup]
    public void Cleanup() => (_a, _b, _c, _d, _h, _gh) = ([], [], [], [], [], []);

    /// <summary>STREAM copy, c ← a: 8 B per element.</summary>
    [Benchmark]
    public void StreamCopy() => ForChunks(Elements, Threads, (s, n) =>
    {
        var a = MemoryMarshal.Cast<float, Vector256<float>>(_a.AsSpan(s, n));
        var c = MemoryMarshal.Cast<float, Vector256<float>>(_c.AsSpan(s, n));
        for (int i = 0; i < a.Length; i++) c[i] = a[i];
        for (int i = s + a.Length * Vector256<float>.Count; i < s + n; i++) _c[i] = _a[i];
    });

    /// <summary>STREAM triad, c ← a + s·b: 12 B per element.</summary>
    [Benchmark]
    public void StreamTriad() => ForChunks(Elements, Threads, (s, n) =>
    {
        var a = MemoryMarshal.Cast<float, Vector256<float>>(_a.AsSpan(s, n));
        var b = MemoryMarshal.Cast<float, Vector256<float>>(_b.AsSpan(s, n));
        var c = MemoryMarshal.Cast<float, Vector256<float>>(_c.AsSpan(s, n));
        var k = Vector256.Create(3f);
        for (int i = 0; i < a.Length; i++) c[i] = a[i] + k * b[i];
        for (int i = s + a.Length * Vector256<float>.Count; i < s + n; i++) _c[i] = _a[i] + 3f * _b[i];
    });

    /// <summary>
    /// In-place update, a ← a + s·b: 12 B per element. Not a STREAM kernel; it has Adam's traffic pattern
    /// (every line written was just read, so no write-allocate reads), which copy and triad do not: they also
    /// read each destination line before writing it (12 and 16 B actually moved for 8 and 12 B counted).
    /// </summary>
    [Benchmark]
    public void StreamUpdate() => ForChunks(Elements, Threads, (s, n) =>
    {
        var a = MemoryMarshal.Cast<float, Vector256<float>>(_c.AsSpan(s, n));
        var b = MemoryMarshal.Cast<float, Vector256<float>>(_b.AsSpan(s, n));
        var k = Vector256.Create(1e-6f);
        for (int i = 0; i < a.Length; i++) a[i] += k * b[i];
        for (int i = s + a.Length * Vector256<float>.Count; i < s + n; i++) _c[i] += 1e-6f * _b[i];
    });

    /// <summary>
    /// Adam's memory traffic without its arithmetic: read p, g, m, v and write p, m, v in place (p += g, m += g,
    /// v += g), 28 B per element. On a machine with few cores one core cannot keep enough cache misses in flight
    /// to saturate memory from one or two streams, so this seven-stream kernel is the fair roof for Adam.
    /// </summary>
    [Benchmark]
    public void AdamTraffic() => ForChunks(Elements, Threads, (s, n) =>
    {
        var p = MemoryMarshal.Cast<float, Vector256<float>>(_a.AsSpan(s, n));
        var g = MemoryMarshal.Cast<float, Vector256<float>>(_b.AsSpan(s, n));
        var m = MemoryMarshal.Cast<float, Vector256<float>>(_c.AsSpan(s, n));
        var v = MemoryMarshal.Cast<float, Vector256<float>>(_d.AsSpan(s, n));
        var k = Vector256.Create(1e-9f);
        for (int i = 0; i < p.Length; i++) { var gi = k * g[i]; p[i] += gi; m[i] += gi; v[i] += gi; }
        for (int i = s + p.Length * Vector256<float>.Count; i < s + n; i++) { _a[i] += 1e-9f * _b[i]; _c[i] += 1e-9f * _b[i]; _d[i] += 1e-9f * _b[i]; }
    });

    /// <summary>One AdamW step over every element (p = a, g = b, m = c, v = d): 28 B per element.</summary>
    [Benchmark]
    public void Adam() => CpuAdam.Step(_a, _b, _c, _d, NextStep(), _hp, Threads);

    /// <summary>As <see cref="Adam"/>, also writing the bf16 copy: 30 B per element.</summary>
    [Benchmark]
    public void AdamBf16() => CpuAdam.Step(_a, _b, _c, _d, _h, NextStep(), _hp, Threads);

    /// <summary>
    /// What the engine did with a bf16 gradient store before the fused read: widen the gradients into an fp32 array
    /// (2 B read, 4 B written), then <see cref="AdamBf16"/>: 36 B per parameter.
    /// </summary>
    [Benchmark]
    public void AdamWidenThenStep()
    {
        ForChunks(Elements, Threads, (s, n) =>
        {
            // Vectorised as the engine's PrecisionCast.WidenBf16 is: one Vector256<ushort> into two Vector256<float>.
            var packed = MemoryMarshal.Cast<ushort, Vector256<ushort>>(_gh.AsSpan(s, n));
            var wide = MemoryMarshal.Cast<float, Vector256<float>>(_b.AsSpan(s, n));
            for (int v = 0; v < packed.Length; v++)
            {
                var (lo, hi) = Vector256.Widen(packed[v]);
                wide[2 * v] = Vector256.ShiftLeft(lo, 16).AsSingle();
                wide[2 * v + 1] = Vector256.ShiftLeft(hi, 16).AsSingle();
            }
            for (int i = s + packed.Length * Vector256<ushort>.Count; i < s + n; i++) _b[i] = BitConverter.UInt32BitsToSingle((uint)_gh[i] << 16);
        });
        AdamBf16();
    }

    /// <summary>The engine's path now: bf16 gradients widened as CpuAdam reads them, bf16 copy written: 28 B per parameter.</summary>
    [Benchmark]
    public void AdamBf16Gradients() => CpuAdam.StepBf16Gradients(_a, _gh, _c, _d, _h, NextStep(), _hp, Threads);

    // The step number only moves the bias corrections; it is kept small so they stay away from 1.
    private int NextStep() => _step = _step % 1000 + 1;

    /// <summary>The same split the kernels use: contiguous chunks of 64 Ki elements over the threads, on the same workers.</summary>
    private static void ForChunks(int count, int threads, Action<int, int> body)
    {
        const int chunk = 64 * 1024;
        int chunks = (count + chunk - 1) / chunk;
        CpuWorkers.ForCores(threads).For(chunks, c =>
        {
            int s = (int)c * chunk;
            body(s, Math.Min(chunk, count - s));
        });
    }

    /// <summary>
    /// `dotnet run -c Release -- adam [threads] [rounds]`: best-of and median rates in GB/s without
    /// BenchmarkDotNet's statistics (minutes rather than tens of minutes on a loaded machine).
    /// </summary>
    public static void Quick(string[] args)
    {
        var bench = new CpuAdamBenchmarks();
        if (args.Length > 1) bench.Threads = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
        int rounds = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 11;
        bench.Setup();
        try
        {
            Console.WriteLine($"{Environment.ProcessorCount} cores, {bench.Threads} threads, {bench.Elements / (1 << 20)} Mi elements per array, " +
                $"Avx2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}, Avx512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, load {File.ReadAllText("/proc/loadavg").Trim()}");
            (string Name, Action Kernel, int Bytes)[] kernels =
            [
                ("copy (8 B/elem)", bench.StreamCopy, 8), ("triad (12 B/elem)", bench.StreamTriad, 12), ("update in place (12 B/elem)", bench.StreamUpdate, 12),
                ("adam's traffic (28 B/elem)", bench.AdamTraffic, AdamBytes),
                ("adam (28 B/param)", bench.Adam, AdamBytes), ("adam+bf16 (30 B/param)", bench.AdamBf16, AdamBf16Bytes),
                ("widen bf16 g, adam+bf16 (36)", bench.AdamWidenThenStep, AdamBf16Bytes + 6), ("adam, bf16 g + bf16 (28 B)", bench.AdamBf16Gradients, AdamBytes),
            ];
            var rates = Rates(kernels, bench.Elements, rounds);
            for (int j = 0; j < kernels.Length; j++)
            {
                var r = rates[j];
                Console.WriteLine($"{kernels[j].Name,-28} best {r[^1],5:0.0} GB/s  median {r[rounds / 2],5:0.0}  p10 {r[rounds / 10],5:0.0}  ({r[^1] * 1e3 / kernels[j].Bytes:0} M elem/s best)");
            }
            // The roof is the fastest memory-only kernel, judged by medians (bests on a shared machine are outliers).
            int roof = Enumerable.Range(0, 4).MaxBy(j => rates[j][rounds / 2]);
            double bandwidth = rates[roof][rounds / 2];
            Console.WriteLine($"bandwidth (median of the fastest memory-only kernel, {kernels[roof].Name}): {bandwidth:0.0} GB/s; " +
                $"adam {rates[4][rounds / 2] / bandwidth:P0}, adam+bf16 {rates[5][rounds / 2] / bandwidth:P0} of it (medians)");
            // Parameters per second of the two ways the engine reads a bf16 gradient store (their bytes differ, so compare elements).
            double widen = rates[6][rounds / 2] * 1e3 / (AdamBf16Bytes + 6), fused = rates[7][rounds / 2] * 1e3 / AdamBytes;
            Console.WriteLine($"bf16 gradients: fused read {fused:0} M params/s against widen-then-step {widen:0} M params/s = {fused / widen:0.00}x (medians)");
            Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    /// <summary>
    /// Each kernel twice to warm up, then <paramref name="rounds"/> rounds of every kernel in turn, so a change in
    /// the machine's load hits all of them alike; the rates of each kernel in GB/s, sorted ascending.
    /// </summary>
    private static double[][] Rates((string Name, Action Kernel, int Bytes)[] kernels, long elements, int rounds)
    {
        foreach (var k in kernels) { k.Kernel(); k.Kernel(); }
        var rates = kernels.Select(_ => new double[rounds]).ToArray();
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < kernels.Length; j++)
            {
                long t0 = Stopwatch.GetTimestamp();
                kernels[j].Kernel();
                rates[j][r] = (double)kernels[j].Bytes * elements / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
            }
        foreach (var r in rates) Array.Sort(r);
        return rates;
    }
}
