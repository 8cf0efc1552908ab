using System.Runtime.InteropServices;
using System.Text;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// CUDA's run-time compiler (NVRTC), loaded from wherever PyTorch's CUDA build keeps it, so the engine can
/// compile a small kernel (the fused AdamW) for the GPU it finds without a CUDA toolkit. Its file name
/// carries the CUDA major version (<c>libnvrtc.so.13</c>), so it is looked up rather than linked:
/// <c>AIOS_NVRTC</c> (a path) first, then the loader's own search, then the <c>nvidia/*/lib</c> folders of
/// the Python installation whose <c>torch/lib</c> is on <c>LD_LIBRARY_PATH</c>.
/// </summary>
internal static unsafe class Nvrtc
{
    private static readonly Lazy<nint> Handle = new(Load);

    /// <summary>Whether NVRTC could be found on this machine.</summary>
    public static bool IsAvailable => Handle.Value != 0;

    /// <summary>Compiles CUDA C <paramref name="source"/> to PTX for compute capability <paramref name="major"/>.<paramref name="minor"/>.</summary>
    /// <exception cref="InvalidOperationException">NVRTC is missing, or the source does not compile (the log is in the message).</exception>
    public static byte[] CompileToPtx(string source, string name, int major, int minor, params string[] extraOptions)
    {
        nint lib = Handle.Value;
        if (lib == 0) throw new InvalidOperationException("NVRTC (libnvrtc.so) was not found; set AIOS_NVRTC to its path.");
        var create = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCreateProgram");
        var compile = (delegate* unmanaged<nint, int, byte**, int>)NativeLibrary.GetExport(lib, "nvrtcCompileProgram");
        var logSize = (delegate* unmanaged<nint, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLogSize");
        var getLog = (delegate* unmanaged<nint, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetProgramLog");
        var ptxSize = (delegate* unmanaged<nint, nuint*, int>)NativeLibrary.GetExport(lib, "nvrtcGetPTXSize");
        var getPtx = (delegate* unmanaged<nint, byte*, int>)NativeLibrary.GetExport(lib, "nvrtcGetPTX");
        var destroy = (delegate* unmanaged<nint*, int>)NativeLibrary.GetExport(lib, "nvrtcDestroyProgram");

        string[] options = [$"--gpu-architecture=compute_{major}{minor}", .. extraOptions];
        byte[] src = Utf8Z(source), file = Utf8Z(name);
        byte[][] opts = options.Select(Utf8Z).ToArray();
        var handles = new GCHandle[opts.Length];
        nint program;
        try
        {
            var pointers = stackalloc byte*[opts.Length];
            for (int i = 0; i < opts.Length; i++)
            {
                handles[i] = GCHandle.Alloc(opts[i], GCHandleType.Pinned);
                pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
            }
            fixed (byte* s = src, f = file)
            {
                Check(create(&program, s, f, 0, null, null), "nvrtcCreateProgram");
            }
            int compiled = compile(program, opts.Length, pointers);
            if (compiled != 0)
            {
                nuint size;
                logSize(program, &size);
                var log = new byte[(int)size];
                fixed (byte* l = log) getLog(program, l);
                destroy(&program);
                throw new InvalidOperationException($"NVRTC could not compile {name} (error {compiled}): {Encoding.UTF8.GetString(log).TrimEnd('\0')}");
            }
            nuint length;
            Check(ptxSize(program, &length), "nvrtcGetPTXSize");
            var ptx = new byte[(int)length];
            fixed (byte* p = ptx) Check(getPtx(program, p), "nvrtcGetPTX");
            destroy(&program);
            return ptx;
        }
        finally
        {
            foreach (GCHandle h in handles) if (h.IsAllocated) h.Free();
        }
    }

    private static byte[] Utf8Z(string s) => Encoding.UTF8.GetBytes(s + "\0");

    private static void Check(int result, string call)
    {
        if (result != 0) throw new InvalidOperationException($"{call} failed with NVRTC error {result}.");
    }

    private static nint Load()
    {
        foreach (string candidate in Candidates())
            if (NativeLibrary.TryLoad(candidate, out nint handle)) return handle;
        return 0;
    }

    /// <summary>Paths and names to try, in order.</summary>
    internal static IEnumerable<string> Candidates()
    {
        if (System.Environment.GetEnvironmentVariable("AIOS_NVRTC") is { Length: > 0 } explicitPath) yield return explicitPath;
        foreach (string soname in new[] { "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2" }) yield return soname;
        string[] searchPath = (System.Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (string dir in searchPath.Append("/usr/local/cuda/lib64"))
        {
            // torch/lib → site-packages/nvidia/<package>/lib/libnvrtc.so.N (PyTorch's pip wheels).
            string nvidia = Path.GetFullPath(Path.Combine(dir, "..", "..", "nvidia"));
            foreach (string root in new[] { dir, nvidia })
            {
                if (!Directory.Exists(root)) continue;
                IEnumerable<string> found;
                try
                {
                    found = Directory.EnumerateFiles(root, "libnvrtc.so*", SearchOption.AllDirectories)
                        .Where(p => !Path.GetFileName(p).Contains("builtins", StringComparison.Ordinal)).Order().ToArray();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue;
                }
                foreach (string path in found) yield return path;
            }
        }
    }
}
