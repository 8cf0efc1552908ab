using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The device 8-bit AdamW (issue 15, resident runs): the host kernel on a CPU device makes exactly the offloaded 8-bit
/// optimizer's codes, scales and weights; the fused CUDA kernel's scalar twin makes exactly <see cref="BlockwiseAdam"/>'s
/// (the stochastic rounding included: the same hash, uniforms and arithmetic);
/// a CUDA kernel that cannot be built is refused naming <c>--optimizer-state fp32</c>.
/// </summary>
public sealed class DeviceAdamW8bitTests
{
    public DeviceAdamW8bitTests() => TorchRuntime.EnsureReady();

    private static float[] Random(Random r, int n, float scale) => [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale)];

    [Theory]
    [InlineData(2048, 1f)]
    [InlineData(2053, 0.5f)]
    [InlineData(100, 1f)]
    [InlineData(7, 2f)]
    public void Given_random_blocks_When_the_kernels_scalar_twin_and_BlockwiseAdam_take_five_steps_Then_weights_codes_and_scales_are_bit_identical(int n, float gradScale)
    {
        var r = new Random(n);
        float[] p1 = Random(r, n, 1), p2 = (float[])p1.Clone();
        var hp = new AdamHyperParameters { LearningRate = 3e-3f, WeightDecay = 0.01f };
        var (mc1, vc1) = (new byte[n], new byte[n]);
        var (mc2, vc2) = (new byte[n], new byte[n]);
        long blocks = BlockwiseQuantization.Blocks(n);
        float[] ms1 = new float[blocks], vs1 = new float[blocks], ms2 = new float[blocks], vs2 = new float[blocks];
        float[] table = EightBitAdamKernel.Table();
        for (int step = 1; step <= 5; step++)
        {
            // Gradients spanning decades, so codes land all over the map.
            float[] g = [.. Random(r, n, 1).Select((x, i) => x * MathF.Pow(10, -(i % 7)))];
            BlockwiseAdam.Step(p1, g, mc1, ms1, vc1, vs1, step, hp, gradScale, threads: 1);
            var k = BlockwiseAdam.Coefficients.For(step, hp, gradScale);
            for (int b = 0; b < blocks; b++)
            {
                int start = b * BlockwiseQuantization.BlockSize, len = Math.Min(BlockwiseQuantization.BlockSize, n - start);
                Assert.True(EightBitAdamKernel.UpdateBlock(p2.AsSpan(start, len), g.AsSpan(start, len), mc2.AsSpan(start, len), ref ms2[b], vc2.AsSpan(start, len), ref vs2[b], k, table,
                    (uint)EightBitAdamKernel.BlockSeeds([new DeviceEightBitMoments.Piece(0, n, 0)])[b]));
            }
            Assert.Equal(p1.Select(BitConverter.SingleToInt32Bits), p2.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(mc1, mc2);
            Assert.Equal(vc1, vc2);
            Assert.Equal(ms1, ms2);
            Assert.Equal(vs1, vs2);
        }
        Assert.Contains(mc1, c => c < 120);
        Assert.Contains(mc1, c => c > 135);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_values_around_every_threshold_and_value_When_the_kernel_rounds_stochastically_Then_it_picks_the_cpu_maps_code(bool signed)
    {
        float[] table = EightBitAdamKernel.Table();
        DynamicQuantizationMap map = signed ? DynamicQuantizationMap.Signed : DynamicQuantizationMap.Unsigned;
        ReadOnlySpan<float> constants = table.AsSpan((signed ? 2 : 3) * EightBitAdamKernel.TableSize, EightBitAdamKernel.TableSize);
        var probes = new List<float> { 0f, -0f, 1f, 1.0000001f, 2f, 1e-9f, 3e-7f, 1e-40f, float.PositiveInfinity, float.NaN };
        if (signed) probes.AddRange([-1f, -1e-40f, float.NegativeInfinity, -2f]);
        for (int c = 0; c < 256; c++) probes.AddRange([map.Values[c], MathF.BitIncrement(map.Values[c]), MathF.BitDecrement(map.Values[c])]);
        for (int c = 0; c < 255; c++) probes.Add((map.Values[c] + map.Values[c + 1]) / 2);
        var r = new Random(8);
        for (int i = 0; i < 20_000; i++) probes.Add((float)(signed ? r.NextDouble() * 2 - 1 : r.NextDouble()) * MathF.Pow(10, -r.Next(0, 8)));
        uint key = StochasticRounding.BlockKey(3, StochasticRounding.BlockSeed(1, 5000));
        for (int i = 0; i < probes.Count; i++)
        {
            var (um, uv) = EightBitAdamKernel.Uniforms(key, i);
            Assert.Equal(StochasticRounding.FirstMomentUniform(StochasticRounding.ElementHash(key, i)), um);
            Assert.Equal(StochasticRounding.SecondMomentUniform(StochasticRounding.ElementHash(key, i)), uv);
            float u = signed ? um : uv;
            Assert.True(map.QuantizeStochastic(probes[i], u) == EightBitAdamKernel.QuantizeStochastic(probes[i], u, constants, signed),
                $"y = {probes[i]:R}, u = {u:R}: map {map.QuantizeStochastic(probes[i], u)}, kernel {EightBitAdamKernel.QuantizeStochastic(probes[i], u, constants, signed)}");
        }
    }

    [Fact]
    public void Given_a_tiny_gpt_layer_When_the_host_8bit_update_and_the_offloaded_8bit_optimizer_take_the_same_gradients_Then_codes_scales_and_weights_are_identical()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        ParameterLayout layout = ParameterLayout.ForLayer(spec);
        int n = (int)layout.Elements;
        var options = new AdamWOptions { LearningRate = 3e-3 };
        var offloaded = EightBitMoments.For(spec, LayerwiseTrainerTests.Small() with { OptimizerState = OptimizerStateFormat.EightBit }, LayerwiseTrainerTests.Options() with { Adam = options })!;
        var group = new SubGroup(0, 0, 0, n);
        var r = new Random(3);
        float[] master = Random(r, n, 0.1f), reference = (float[])master.Clone();
        byte[] moments = new byte[offloaded.MomentBytes(group)];
        using var device = new DeviceEightBitMoments([.. layout.Slices.Select(s => s.Offset)], n, CPU);
        using Tensor p = tensor(master);
        using Tensor working = zeros([n], ScalarType.BFloat16);
        var adam = new HostBlockwiseAdamW8bit(options);
        for (int step = 1; step <= 4; step++)
        {
            float[] g = Random(r, n, 0.01f);
            float scale = step == 3 ? 0.25f : 1f;
            offloaded.Step(group, reference, g, moments, step, scale, []);
            using Tensor gradient = tensor(g);
            adam.Update(p, gradient, device, working, step, scale);
        }

        Assert.Equal(reference, p.data<float>().ToArray());
        var (mc, ms, vc, vs) = device.Raw();
        Assert.Equal(moments[..n], mc);
        Assert.Equal(moments[n..(2 * n)], vc);
        float[] scales = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(moments.AsSpan(2 * n)).ToArray();
        Assert.Equal(scales[..ms.Length], ms);
        Assert.Equal(scales[ms.Length..], vs);
        Assert.Equal(layout.Slices.Sum(s => BlockwiseQuantization.Blocks(s.Elements)), device.Blocks);
        // The working copy is the updated master rounded to bf16.
        Assert.Equal(p.to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray(), working.to(ScalarType.Float32).data<float>().ToArray());
    }

    [Fact]
    public void Given_8bit_moments_When_decoded_and_encoded_again_Then_the_codes_and_scales_come_back_exactly()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        ParameterLayout layout = ParameterLayout.ForOuter(spec);
        int n = (int)layout.Elements;
        using var moments = new DeviceEightBitMoments([.. layout.Slices.Select(s => s.Offset)], n, CPU);
        var r = new Random(5);
        moments.Encode(Random(r, n, 0.01f), [.. Random(r, n, 1e-4f).Select(MathF.Abs)]);
        var before = moments.Raw();

        var (m, v) = moments.Decode();
        moments.Encode(m, v);

        var after = moments.Raw();
        Assert.Equal(before.MCodes, after.MCodes);
        Assert.Equal(before.VCodes, after.VCodes);
        Assert.Equal(before.MScales, after.MScales);
        Assert.Equal(before.VScales, after.VScales);
        Assert.Contains(before.MScales, s => s != 0);
    }

    [Fact]
    public void Given_the_fused_kernel_cannot_be_built_When_the_8bit_update_is_picked_Then_it_is_refused_naming_fp32_state()
    {
        var e = Assert.Throws<InvalidOperationException>(() => DeviceAdamW8bit.Fused(() => throw new InvalidOperationException("NVRTC could not compile aios_adamw8bit.cu (error 6)")));

        Assert.Contains("--optimizer-state fp32", e.Message);
        Assert.Contains("NVRTC could not compile", e.Message);
    }

    [Fact]
    public void Given_no_cuda_driver_library_When_the_8bit_update_is_picked_Then_it_is_refused_naming_fp32_state()
    {
        var e = Assert.Throws<InvalidOperationException>(() => DeviceAdamW8bit.Fused(() => throw new DllNotFoundException("libcuda.so.1")));

        Assert.Contains("--optimizer-state fp32", e.Message);
        Assert.Contains("libcuda.so.1", e.Message);
    }

    [Fact]
    public void Given_the_kernel_source_When_read_Then_its_block_and_table_sizes_are_the_cpu_formats()
    {
        // The kernel hard-codes the block size and table layout; they must be the ones checkpoints and the CPU optimizer use.
        Assert.Contains($"#define AIOS_BLOCK {BlockwiseQuantization.BlockSize}", FusedCudaAdamW8bit.Source);
        Assert.Contains($"__shared__ float s_table[{EightBitAdamKernel.Table().Length}]", FusedCudaAdamW8bit.Source);
        Assert.Contains("s_table + 512", FusedCudaAdamW8bit.Source);
        Assert.Contains("s_table + 768", FusedCudaAdamW8bit.Source);
        // The kernel spells out the hash and the uniform; their constants must be StochasticRounding's.
        Assert.Contains("x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;", FusedCudaAdamW8bit.Source);
        Assert.Contains("1.0f / 65536.0f, 1.0f / 131072.0f", FusedCudaAdamW8bit.Source);
        Assert.Equal(DynamicQuantizationMap.Signed.StochasticConstants(), EightBitAdamKernel.Table().AsSpan(2 * EightBitAdamKernel.TableSize, 56).ToArray());
        Assert.Equal(DynamicQuantizationMap.Unsigned.StochasticConstants(), EightBitAdamKernel.Table().AsSpan(3 * EightBitAdamKernel.TableSize, 56).ToArray());
    }
}
