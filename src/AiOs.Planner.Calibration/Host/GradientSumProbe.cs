using System.Diagnostics;
using System.Runtime.InteropServices;
using AiOs.Planner.IO;
using AiOs.Planner.Optim;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Host;

/// <summary>
/// The engine's gradient-sum pass (<see cref="GradientSums.AddBf16"/>: a later micro-batch's bf16 gradients widened and added
/// into a unit's fp32 sum, split evenly over the cores) timed as it runs: bytes of memory traffic per second, 10 per
/// element (read the sum and the gradient, write the sum), in unit-sized calls as the engine makes them, with one core kept
/// busy as the engine's launching thread keeps it (<see cref="BusyCores"/>).
/// </summary>
public static unsafe class GradientSumProbe
{
    /// <summary>Bytes of memory traffic per element of the pass (read fp32 and bf16, write fp32).</summary>
    public const int BytesPerElement = 10;

    /// <summary>Elements per call: a large layer's (gpt2-xl's 31 M, llama-2-7b's 202 M are above; 32 M keeps the probe's memory small).</summary>
    public const long UnitElements = 32L << 20;

    /// <summary>
    /// Cores a spinning thread keeps busy while the pass is timed. In the engine the pass runs on the download worker while
    /// the launching thread is busy on a core of its own; the pass's parts are one per core, so the part that shares that core
    /// finishes last. Timed on idle cores the pass ran at 105–158 GB/s of traffic on four H100 VMs, inside the engine's
    /// steps at 45–63 GB/s, and calibrated profiles planned the accumulation rows 17–21% fast (with the in-step figure −4%;
    /// docs/validation/gpu-2026-12-06-session14.md). On 2 cores with one spinning the pass takes twice its idle time.
    /// </summary>
    public const int BusyCores = 1;

    /// <summary>Adds <paramref name="elements"/> bf16 values into fp32 sums, one unit per call, for about <paramref name="duration"/>; returns traffic in bytes per second.</summary>
    public static Bandwidth Measure(long elements, TimeSpan duration, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(elements, 1);
        using var sums = HugePages.Allocate(new Bytes(elements * sizeof(float)).AlignUp(AlignedBuffer.Alignment));
        using var bf16 = HugePages.Allocate(new Bytes(elements * sizeof(ushort)).AlignUp(AlignedBuffer.Alignment));
        NativeMemory.Clear((void*)sums.Address, (nuint)sums.Length);
        // Small normal values (a gradient's), so no lane takes a denormal's slow path.
        ushort* g = (ushort*)bf16.Address;
        // In parallel: the state spans many last-level caches (ModeSettings.SizedFor).
        nint gradients = bf16.Address;
        Parallel.For(0L, (elements + (1L << 20) - 1) >> 20, c =>
        {
            ushort* part = (ushort*)gradients;
            for (long i = c << 20, end = Math.Min(elements, (c + 1) << 20); i < end; i++) part[i] = (ushort)(0x3A00 + (i & 0xFF));
        });
        var units = AdamProbe.SubGroups(elements, UnitElements);
        void Pass()
        {
            foreach (var (offset, count) in units)
                GradientSums.AddBf16(new Span<float>((float*)sums.Address + offset, count), new ReadOnlySpan<ushort>(g + offset, count));
        }
        Pass(); // warm-up: page faults, the workers' start, JIT
        using var busy = BusyCores > 0 && Environment.ProcessorCount > 1 ? new Spinner() : null;
        long added = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration || added < elements)
        {
            ct.ThrowIfCancellationRequested();
            Pass();
            added += elements;
        }
        return new Bandwidth(added * (double)BytesPerElement / sw.Elapsed.TotalSeconds);
    }

    /// <summary>A thread that spins on a core until disposed: the stand-in for the engine's launching thread.</summary>
    private sealed class Spinner : IDisposable
    {
        private readonly Thread _thread;
        private volatile bool _stop;

        public Spinner()
        {
            _thread = new Thread(() => { while (!_stop) Thread.SpinWait(64); }) { IsBackground = true, Name = "aios-busy-core" };
            _thread.Start();
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
        }
    }
}
