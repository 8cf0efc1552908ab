using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Native;

/// <summary>What the engine's NVRTC kernels share: their bf16 conversions and the check of the tensors they are handed.</summary>
internal static class DeviceKernels
{
    /// <summary>
    /// CUDA C for bf16 ↔ fp32 as PyTorch converts: widening by the bits, narrowing rounded to nearest even with a NaN kept
    /// quiet. The kernels' sources begin with it.
    /// </summary>
    public const string Bf16Conversions = """
        __device__ __forceinline__ float bf16_to_float(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
        __device__ __forceinline__ unsigned short float_to_bf16(float f)
        {
            unsigned int bits = __float_as_uint(f);
            if ((bits & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((bits >> 16) | 0x40u);
            return (unsigned short)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
        }

        """;

    /// <summary>
    /// A kernel that must agree with the tensor ops before a run relies on it: <paramref name="source"/> compiled with NVRTC
    /// for the current device, <paramref name="function"/> loaded, built by <paramref name="make"/> (from the function and the
    /// device's multiprocessor count) and run through <paramref name="check"/> (null: it agrees). Null where any of that
    /// fails, with <paramref name="unavailable"/> saying why for the run's summary and a warning on stderr naming
    /// <paramref name="kernel"/> and what happens instead (<paramref name="fallback"/>).
    /// </summary>
    public static T? CompileChecked<T>(string source, string function, Func<nint, int, T> make, Func<T, string?> check,
        string kernel, string fallback, out string? unavailable) where T : class
    {
        unavailable = null;
        try
        {
            var (major, minor, sms) = CudaDriver.DeviceInfo();
            byte[] ptx = Nvrtc.CompileToPtx(source, function + ".cu", major, minor);
            T built = make(CudaDriver.LoadKernel(ptx, function), sms);
            if (check(built) is not { } problem) return built;
            unavailable = $"it disagrees with the tensor ops ({problem})";
            Console.Error.WriteLine($"warning: {kernel} disagrees with the tensor ops ({problem}); {fallback}.");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or System.Runtime.InteropServices.ExternalException)
        {
            unavailable = $"it is unavailable ({e.Message.Split('\n')[0]})";
            Console.Error.WriteLine($"warning: {kernel} is unavailable ({e.Message}); {fallback}.");
        }
        return null;
    }

    /// <summary>Refuses <paramref name="t"/> unless it is a contiguous CUDA tensor of <paramref name="type"/> with <paramref name="n"/> elements (a kernel reads it by raw address).</summary>
    public static void Require(Tensor t, ScalarType type, long n, string name)
    {
        if (t.device_type != DeviceType.CUDA || t.dtype != type || t.numel() != n || !t.is_contiguous())
            throw new ArgumentException($"{name} must be a contiguous CUDA {type} tensor of {n} elements.", name);
    }
}
