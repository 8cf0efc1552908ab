using System.Diagnostics;
using AiOs.Planner.Engine.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The fused AdamW kernels' CUDA source, compiled off-GPU by g++ as C++ with the CUDA built-ins it uses written out, and run
/// over a grid the harness walks block by block, thread by thread: the one-wide kernel must give an independent scalar
/// AdamW's bits, and the four-wide kernel (<c>aios_adamw4</c>) the one-wide kernel's bits for every element, the tail past the last whole four included, with a bf16 or an fp32 gradient,
/// a gradient scale or none, and a working copy or none. CI has no GPU, so this is where the kernel's indexing is tested.
/// </summary>
public sealed class FusedCudaAdamWSourceTests
{
    private const string Cuda = """
        #include <cstring>
        #include <cstdio>
        #include <cmath>
        #include <vector>
        #define __device__
        #define __forceinline__ inline
        #define __global__
        #define __restrict__
        struct dim3 { unsigned x, y, z; };
        static dim3 threadIdx, blockIdx, blockDim, gridDim;
        struct float4 { float x, y, z, w; };
        struct uint2 { unsigned int x, y; };
        static float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
        static unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }

        """;

    private const string Harness = """

        typedef void (*Kernel)(float*, const void*, int, float*, float*, unsigned short*, long long, float, float, float, float, float, float, float, float);

        static void Launch(Kernel k, unsigned blocks, unsigned threads, float* p, const void* g, int bf16, float* m, float* v, unsigned short* w, long long n, float scale)
        {
            gridDim = {blocks, 1, 1}; blockDim = {threads, 1, 1};
            for (unsigned b = 0; b < blocks; b++)
                for (unsigned t = 0; t < threads; t++)
                {
                    blockIdx = {b, 0, 0}; threadIdx = {t, 0, 0};
                    k(p, g, bf16, m, v, w, n, 0.999f, 0.1f, 0.999f, 0.001f, -0.01f, 0.0447f, 1e-8f, scale);
                }
        }

        int main()
        {
            unsigned state = 12345u;
            auto next = [&]() { state = state * 1664525u + 1013904223u; return ((state >> 8) & 0xffff) / 65536.0f - 0.5f; };
            int failures = 0;
            for (long long n : {1003LL, 64LL, 3LL})
            for (int bf16 = 0; bf16 < 2; bf16++)
            for (float scale : {1.0f, 0.5f})
            for (int withWorking = 0; withWorking < 2; withWorking++)
            {
                std::vector<float> p(n), m(n), v(n), g(n);
                std::vector<unsigned short> gb(n);
                for (long long i = 0; i < n; i++) { p[i] = next(); m[i] = next() * 0.1f; v[i] = std::fabs(next()) * 0.01f; g[i] = next(); gb[i] = float_to_bf16(g[i]); }
                std::vector<float> p1 = p, m1 = m, v1 = v, p4 = p, m4 = m, v4 = v;
                std::vector<unsigned short> w1(n, 0), w4(n, 0);
                const void* grad = bf16 ? (const void*)gb.data() : (const void*)g.data();
                for (int step = 0; step < 3; step++)
                {
                    Launch(aios_adamw, 3, 8, p1.data(), grad, bf16, m1.data(), v1.data(), withWorking ? w1.data() : nullptr, n, scale);
                    Launch(aios_adamw4, 3, 8, p4.data(), grad, bf16, m4.data(), v4.data(), withWorking ? w4.data() : nullptr, n, scale);
                }
                // An independent scalar AdamW in the kernel's order of operations (torch.optim.AdamW's): the one-wide kernel's bits.
                std::vector<float> pr = p, mr = m, vr = v;
                for (int step = 0; step < 3; step++)
                    for (long long i = 0; i < n; i++)
                    {
                        float gi = bf16 ? bf16_to_float(gb[i]) : g[i];
                        if (scale != 1.0f) gi = gi * scale;
                        pr[i] = pr[i] * 0.999f;
                        mr[i] = mr[i] + 0.1f * (gi - mr[i]);
                        vr[i] = 0.999f * vr[i] + 0.001f * (gi * gi);
                        pr[i] = pr[i] + -0.01f * (mr[i] / (std::sqrt(vr[i]) / 0.0447f + 1e-8f));
                    }
                bool reference = std::memcmp(p1.data(), pr.data(), n * 4) == 0 && std::memcmp(m1.data(), mr.data(), n * 4) == 0
                    && std::memcmp(v1.data(), vr.data(), n * 4) == 0;
                if (!reference) { std::printf("n=%lld bf16=%d scale=%g working=%d: the one-wide kernel differs from the reference\n", n, bf16, scale, withWorking); failures++; }
                bool same = std::memcmp(p1.data(), p4.data(), n * 4) == 0 && std::memcmp(m1.data(), m4.data(), n * 4) == 0
                    && std::memcmp(v1.data(), v4.data(), n * 4) == 0 && std::memcmp(w1.data(), w4.data(), n * 2) == 0;
                bool moved = std::memcmp(p1.data(), p.data(), n * 4) != 0 && (!withWorking || w1[n - 1] != 0);
                if (!same || !moved) { std::printf("n=%lld bf16=%d scale=%g working=%d: same=%d moved=%d\n", n, bf16, scale, withWorking, same, moved); failures++; }
            }
            std::printf("%d failures\n", failures);
            return failures == 0 ? 0 : 1;
        }
        """;

    [GxxFact]
    public void Given_the_one_and_four_wide_kernels_When_run_off_gpu_over_a_grid_Then_every_element_has_the_same_bits()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"aios-adamw-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string source = Path.Combine(dir, "adamw.cpp"), binary = Path.Combine(dir, "adamw");
            File.WriteAllText(source, Cuda + FusedCudaAdamW.Source.Replace("extern \"C\" ", "") + Harness);
            // No contraction into fused multiply-adds: NVRTC compiles the kernel with --fmad=false.
            var (built, errors) = Run("/usr/bin/g++", "-std=c++17", "-O1", "-ffp-contract=off", "-Wall", "-Werror", "-o", binary, source);
            Assert.True(built == 0, errors);
            var (code, output) = Run(binary);
            Assert.True(code == 0, output);
            Assert.Contains("0 failures", output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var process = Process.Start(info)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}

public sealed class FusedCudaAdamWAlignmentTests
{
    [Theory]
    [InlineData(512, 1024, 2048, 4096, 8192, true, true)]
    [InlineData(512, 1032, 2048, 4096, 8200, true, true)]      // bf16 gradient and working copy on 8 bytes
    [InlineData(512, 1032, 2048, 4096, 8192, false, false)]    // an fp32 gradient needs 16
    [InlineData(516, 1024, 2048, 4096, 8192, true, false)]    // the master off 16
    [InlineData(512, 1024, 2048, 4096, 8194, true, false)]    // the working copy off 8
    [InlineData(512, 1024, 2048, 4096, 0, true, true)]        // no working copy (fp32 training)
    public void Given_buffer_addresses_When_checked_Then_the_four_wide_kernel_takes_only_aligned_ones(long p, long g, long m, long v, long w, bool bf16, bool expected)
    {
        // Arguments in an odd order on purpose: the check is over master, moments, gradient, working copy.
        Assert.Equal(expected, FusedCudaAdamW.Aligned((nint)p, (nint)m, (nint)v, (nint)g, (nint)w, bf16));
    }
}
