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
    private ushort[] _h = [];
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
        // Touch every page (first-touch on the threads that will use them) with plausible values.
        ForChunks(Elements, Threads, (s, n) =>
        {
            for (int i = s; i < s + n; i++) { _a[i] = 0.01f * (i % 97); _b[i] = 1e-3f * (i % 13 - 6); _c[i] = 0; _d[i] = 0; _h[i] = 0; }
        });
    }

    [GlobalCleanup]
    public void Cleanup() => (_a, _b, _c, _d, _h) = ([], [], [], [], []);

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

    /// <summary>One AdamW step over every element (p = a, g = b, m = c, v = d): 28 B per element.</summary>
    [Benchmark]
    public void Adam() => CpuAdam.Step(_a, _b, _c, _d, NextStep(), _hp, Threads);

    /// <summary>As <see cref="Adam"/>, also writing the bf16 copy: 30 B per element.</summary>
    [Benchmark]
    public void AdamBf16() => CpuAdam.Step(_a, _b, _c, _d, _h, NextStep(), _hp, Threads);

    // The step number only moves the bias corrections; it is kept small so they stay away from 1.
    private int NextStep() => _step = _step % 1000 + 1;

    /// <summary>The same split the kernels would use: contiguous chunks of 64 Ki elements over the threads.</summary>
    private static void ForChunks(int count, int threads, Action<int, int> body)
    {
        const int chunk = 64 * 1024;
        int chunks = (count + chunk - 1) / chunk;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            int s = c * chunk;
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
        int rounds = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 15;
        bench.Setup();
        try
        {
            Console.WriteLine($"{Environment.ProcessorCount} cores, {bench.Threads} threads, {bench.Elements / (1 << 20)} Mi elements per array, " +
                $"Avx2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}, Avx512F {System.Runtime.Intrinsics.X86.Avx512F.IsSupported}, load {File.ReadAllText("/proc/loadavg").Trim()}");
            double copy = Rate(bench.StreamCopy, 8, bench.Elements, rounds, "copy");
            double triad = Rate(bench.StreamTriad, 12, bench.Elements, rounds, "triad");
            double adam = Rate(bench.Adam, AdamBytes, bench.Elements, rounds, "adam (28 B/param)");
            double adamBf16 = Rate(bench.AdamBf16, AdamBf16Bytes, bench.Elements, rounds, "adam+bf16 (30 B/param)");
            double bandwidth = Math.Max(copy, triad);
            Console.WriteLine($"bandwidth (best of copy, triad): {bandwidth:0.0} GB/s; adam {adam / bandwidth:P0}, adam+bf16 {adamBf16 / bandwidth:P0} of it");
            Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
        }
        finally
        {
            bench.Cleanup();
        }
    }

    /// <summary>Runs <paramref name="kernel"/> <paramref name="rounds"/> times after two warm-ups; prints and returns the best rate in GB/s.</summary>
    private static double Rate(Action kernel, int bytesPerElement, long elements, int rounds, string name)
    {
        kernel(); kernel();
        var rates = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            kernel();
            rates[r] = (double)bytesPerElement * elements / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
        }
        Array.Sort(rates);
        Console.WriteLine($"{name,-24} best {rates[^1],6:0.0} GB/s  median {rates[rounds / 2],6:0.0}  p10 {rates[rounds / 10],6:0.0}  ({rates[^1] * 1e9 / bytesPerElement / 1e6:0} M elements/s best)");
        return rates[^1];
    }
}
