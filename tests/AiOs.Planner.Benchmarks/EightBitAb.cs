using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace AiOs.Planner.Benchmarks;

/// <summary>
/// Issue 15: two builds of the 8-bit Adam timed against each other in one process, for kernel changes whose gain is
/// smaller than this VM's noise between runs. `dotnet run -c Release -- adam8ab DIR_A DIR_B [N] [steps per round] [rounds]
/// [threads] [nobf]` loads AiOs.Planner.Core.dll from each folder (a Release build output) into its own load context, gives
/// each the same state (N parameters, random codes, gradients of 10⁻²), and alternates rounds of BlockwiseAdam.Step (with
/// the bf16 copy unless `nobf`), A then B, B then A. Prints each build's median (best) rate, the median of the per-round
/// ratios B / A, and a checksum of each build's codes, scales, parameters and bf16 words after the same steps: equal
/// checksums mean the builds gave the same bits.
/// </summary>
public static unsafe class EightBitAb
{
    public static void Run(string[] args)
    {
        if (args.Length < 3)
            throw new ArgumentException("adam8ab needs two folders holding a Release build of AiOs.Planner.Core.dll: adam8ab DIR_A DIR_B [N] [steps per round] [rounds] [threads] [nobf].");
        string[] dirs = [args[1], args[2]];
        int n = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1 << 20;
        int reps = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 20;
        int rounds = args.Length > 5 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 21;
        int threads = args.Length > 6 ? int.Parse(args[6], CultureInfo.InvariantCulture) : 1;
        bool bf16 = !(args.Length > 7 && args[7] == "nobf");
        var builds = dirs.Select(d => new Build(d, n)).ToArray();
        Console.WriteLine($"kernel {builds[0].KernelName}; N {n:N0}, {threads} thread(s), bf16 copy {(bf16 ? "on" : "off")}, {rounds} rounds of {reps} steps");
        for (int w = 0; w < 60; w++) foreach (var b in builds) b.Step(threads, bf16); // past tiered compilation
        var rates = new double[2][];
        rates[0] = new double[rounds]; rates[1] = new double[rounds];
        var ratio = new double[rounds];
        var watch = new Stopwatch();
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < 2; i++)
            {
                int v = r % 2 == 0 ? i : 1 - i;
                watch.Restart();
                for (int k = 0; k < reps; k++) builds[v].Step(threads, bf16);
                rates[v][r] = (double)n * reps / watch.Elapsed.TotalSeconds / 1e6;
            }
            ratio[r] = rates[1][r] / rates[0][r];
        }
        static double Median(double[] x) { var s = x.Order().ToArray(); return s[s.Length / 2]; }
        for (int v = 0; v < 2; v++)
            Console.WriteLine($"{dirs[v]}: median {Median(rates[v]):0} (best {rates[v].Max():0}) M params/s, checksum {builds[v].Checksum():X16}");
        Console.WriteLine($"B / A per round: median {Median(ratio):0.000} (min {ratio.Min():0.000}, max {ratio.Max():0.000}); load {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?")}");
    }

    /// <summary>One build's BlockwiseAdam and its own copy of the state (native memory, so the pointers hold).</summary>
    private sealed class Build
    {
        private readonly MethodInfo _step;
        private readonly object _hp;
        private readonly int _n;
        private readonly long _blocks;
        private readonly float* _p, _g, _ms, _vs;
        private readonly byte* _mc, _vc;
        private readonly ushort* _h;
        private int _t;

        public string KernelName { get; }

        public Build(string dir, int n)
        {
            var assembly = new AssemblyLoadContext(dir).LoadFromAssemblyPath(Path.GetFullPath(Path.Combine(dir, "AiOs.Planner.Core.dll")));
            var adam = assembly.GetType("AiOs.Planner.Optim.BlockwiseAdam", throwOnError: true)!;
            _hp = Activator.CreateInstance(assembly.GetType("AiOs.Planner.Optim.AdamHyperParameters", throwOnError: true)!)!;
            _step = adam.GetMethods().Single(m => m.Name == "Step" && m.GetParameters().Length == 12 && m.GetParameters()[0].ParameterType == typeof(float*));
            KernelName = (string)adam.GetProperty("KernelName")!.GetValue(null)!;
            _n = n;
            _blocks = (n + 2047) / 2048;
            _p = Alloc<float>(n); _g = Alloc<float>(n); _mc = Alloc<byte>(n); _vc = Alloc<byte>(n); _h = Alloc<ushort>(n);
            _ms = Alloc<float>(_blocks); _vs = Alloc<float>(_blocks);
            var rng = new Random(1);
            for (int i = 0; i < n; i++)
            {
                _p[i] = (float)(rng.NextDouble() - 0.5);
                _g[i] = (float)((rng.NextDouble() - 0.5) * 1e-2);
                _mc[i] = (byte)rng.Next(256);
                _vc[i] = (byte)rng.Next(256);
            }
            for (long b = 0; b < _blocks; b++) { _ms[b] = 1e-3f; _vs[b] = 1e-3f; }
        }

        private static T* Alloc<T>(long count) where T : unmanaged => (T*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(T)), 64);

        public void Step(int threads, bool bf16) => _step.Invoke(null, [Pointer.Box(_p, typeof(float*)), Pointer.Box(_g, typeof(float*)),
            Pointer.Box(_mc, typeof(byte*)), Pointer.Box(_ms, typeof(float*)), Pointer.Box(_vc, typeof(byte*)), Pointer.Box(_vs, typeof(float*)),
            Pointer.Box(bf16 ? _h : null, typeof(ushort*)), (long)_n, ++_t, _hp, 1f, threads]);

        public ulong Checksum()
        {
            ulong sum = 0;
            for (int i = 0; i < _n; i++) sum = sum * 31 + _mc[i];
            for (int i = 0; i < _n; i++) sum = sum * 31 + _vc[i];
            for (int i = 0; i < _n; i++) sum = sum * 31 + _h[i];
            for (int i = 0; i < _n; i++) sum = sum * 31 + BitConverter.SingleToUInt32Bits(_p[i]);
            for (long b = 0; b < _blocks; b++) sum = sum * 31 + BitConverter.SingleToUInt32Bits(_ms[b]) + BitConverter.SingleToUInt32Bits(_vs[b]);
            return sum;
        }
    }
}
