using System.Diagnostics;
using AiOs.Planner.Engine.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>A fact that needs g++ (to parse CUDA source as C++ with stubs); reported as skipped where it is missing.</summary>
public sealed class GxxFactAttribute : FactAttribute
{
    public GxxFactAttribute()
    {
        if (!File.Exists("/usr/bin/g++")) Skip = "needs /usr/bin/g++ (apt-get install g++) to parse the CUDA kernel source off-GPU";
    }
}

/// <summary>
/// The fused 8-bit kernel's CUDA source, parsed off-GPU: g++ reads it as C++ with the CUDA built-ins it uses declared as
/// stubs, so a syntax or type error is caught here rather than by NVRTC on the GPU machine (the math is tested through
/// <see cref="EightBitAdamKernel"/>, its C# twin).
/// </summary>
public sealed class FusedCudaAdamW8bitSourceTests
{
    private const string Stubs = """
        #define __device__
        #define __forceinline__ inline
        #define __global__
        #define __restrict__
        #define __shared__ static
        #define __launch_bounds__(x)
        struct dim3 { unsigned x, y, z; };
        extern dim3 threadIdx, blockIdx, blockDim, gridDim;
        float __uint_as_float(unsigned int); unsigned int __float_as_uint(float); float __int_as_float(int);
        float fabsf(float); float fmaxf(float, float); float fminf(float, float); float sqrtf(float); float fmaf(float, float, float); float floorf(float);
        int max(int, int);
        int min(int, int);
        float __shfl_xor_sync(unsigned, float, int); int __shfl_xor_sync(unsigned, int, int);
        void __syncthreads();

        """;

    [GxxFact]
    public void Given_the_kernel_source_When_parsed_as_cpp_with_cuda_stubs_Then_it_has_no_errors()
    {
        string file = Path.Combine(Path.GetTempPath(), $"aios-adamw8bit-{Guid.NewGuid():N}.cpp");
        File.WriteAllText(file, Stubs + FusedCudaAdamW8bit.Source);
        try
        {
            var info = new ProcessStartInfo("/usr/bin/g++", ["-std=c++17", "-fsyntax-only", "-Wall", "-Wno-unknown-pragmas", "-Werror", file])
            {
                RedirectStandardError = true, RedirectStandardOutput = true,
            };
            using var gxx = System.Diagnostics.Process.Start(info)!;
            string errors = gxx.StandardError.ReadToEnd();
            gxx.WaitForExit();

            Assert.True(gxx.ExitCode == 0, errors);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
