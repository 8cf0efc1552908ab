using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// On a GPU (AIOS_GPU=1), the fused 8-bit AdamW kernel makes bit for bit the host kernel's weights, codes and scales
/// (<see cref="BlockwiseAdam"/>, the offloaded optimizer's), and a resident 8-bit run on CUDA learns as on the CPU.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(TorchGlobalRandom))]
public sealed class FusedCudaAdamW8bitGpuTests
{
    public FusedCudaAdamW8bitGpuTests() => TorchRuntime.EnsureReady(TorchRuntime.DeviceTypeOf("cuda"));

    [GpuTheory]
    [InlineData(false, 1f)]
    [InlineData(true, 0.5f)]
    public void Given_random_tensors_When_the_fused_kernel_and_the_host_kernel_take_five_steps_Then_weights_codes_and_scales_are_bit_identical(bool bf16Gradients, float gradScale)
    {
        long[] starts = [0, 5000, 5003, 9000];
        const int n = 13_001;
        var options = new AdamWOptions { LearningRate = 3e-3 };
        var r = new Random(11);
        float[] master = [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() - 0.5))];
        using var cpuMoments = new DeviceEightBitMoments(starts, n, CPU);
        using var gpuMoments = new DeviceEightBitMoments(starts, n, CUDA);
        using Tensor pCpu = tensor(master), pGpu = tensor(master).cuda();
        using Tensor wCpu = zeros([n], ScalarType.BFloat16), wGpu = zeros([n], ScalarType.BFloat16, CUDA);
        var host = new HostBlockwiseAdamW8bit(options);
        IDeviceAdamW8bit fused = DeviceAdamW8bit.For(CUDA, options);
        Assert.Equal("fused-cuda-8bit", fused.Name);
        for (int step = 1; step <= 5; step++)
        {
            float[] g = [.. Enumerable.Range(0, n).Select(i => (float)(r.NextDouble() - 0.5) * MathF.Pow(10, -(i % 6)))];
            using Tensor gCpu = bf16Gradients ? tensor(g).to(ScalarType.BFloat16) : tensor(g);
            using Tensor gGpu = gCpu.cuda();
            host.Update(pCpu, gCpu, cpuMoments, wCpu, step, gradScale);
            fused.Update(pGpu, gGpu, gpuMoments, wGpu, step, gradScale);
        }
        cuda.synchronize();

        Assert.Equal(pCpu.data<float>().ToArray(), pGpu.cpu().data<float>().ToArray());
        var (a, b) = (cpuMoments.Raw(), gpuMoments.Raw());
        Assert.Equal(a.MCodes, b.MCodes);
        Assert.Equal(a.VCodes, b.VCodes);
        Assert.Equal(a.MScales, b.MScales);
        Assert.Equal(a.VScales, b.VScales);
        Assert.Equal(wCpu.to(ScalarType.Float32).data<float>().ToArray(), wGpu.to(ScalarType.Float32).cpu().data<float>().ToArray());
    }

    [GpuTheory]
    [InlineData(Precision.Bf16)]
    public void Given_resident_8bit_state_on_cuda_When_tiny_gpt_trains_Then_the_loss_falls_and_follows_the_cpu_run(Precision precision)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, OptimizerState = OptimizerStateFormat.EightBit,
        };
        double[] Run(string device)
        {
            using var t = new DeviceTrainer(spec, settings, LayerwiseTrainerTests.Options() with { Device = device });
            if (device == "cuda") Assert.Equal("fused-cuda-8bit", t.OptimizerName);
            var data = Data.TokenDataset.Load(Data.BundledText.DefaultPath);
            return [.. Enumerable.Range(0, 20).Select(s => t.Step(m => data.Sample(42, s, m, settings.MicroBatch, settings.SeqLen)).Loss)];
        }

        double[] gpu = Run("cuda"), cpu = Run("cpu");

        Assert.True(gpu[^1] < gpu[0] - 0.5, $"did not learn: {gpu[0]} → {gpu[^1]}");
        // bf16 kernels differ between devices; the trajectories must stay together, not equal.
        for (int s = 0; s < gpu.Length; s++) Assert.True(Math.Abs(gpu[s] - cpu[s]) < 0.05, $"step {s + 1}: cuda {gpu[s]:F4}, cpu {cpu[s]:F4}");
    }
}
