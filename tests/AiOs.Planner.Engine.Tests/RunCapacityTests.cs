using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Runs;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

public sealed class RunCapacityTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    // 128 × 1,024 tokens: at 64 the full bf16 logits with their fp32 copies (33 GB) were what overflowed; the fused head keeps one chunk of them.
    private static readonly TrainingSettings Big = new() { MicroBatch = 128, SeqLen = 1024 };

    [Fact]
    public void Given_Gpt2AtMicroBatch128OnACpuWith24GiBAvailable_When_Checked_Then_HostRamIsRefusedWithTheActivations()
    {
        var problems = RunCapacity.Problems(Gpt2, Big, new EngineOptions(), ProfileCatalog.Default.Load("ci-2core-24gb"), new LocalResources(Bytes.FromGiB(24), null));

        string ram = Assert.Single(problems);
        Assert.StartsWith("Host RAM: needs", ram);
        Assert.Contains("activations", ram);
    }

    [Fact]
    public void Given_AProfileWithMoreRamThanThisMachineHasAvailable_When_Checked_Then_ThisMachinesRamDecides()
    {
        // h200-1x describes a large host; the run happens here, where only 8 GiB are available (the engine on this CPU
        // needs about 15.5 GiB for gpt2 at 16 × 1024 tokens).
        var settings = new TrainingSettings { MicroBatch = 16, SeqLen = 1024 };

        var here = RunCapacity.Problems(Gpt2, settings, new EngineOptions(), ProfileCatalog.Default.Load("h200-1x"), new LocalResources(Bytes.FromGiB(8), null));
        var roomy = RunCapacity.Problems(Gpt2, settings, new EngineOptions(), ProfileCatalog.Default.Load("h200-1x"), new LocalResources(Bytes.FromGiB(512), null));

        Assert.Contains(here, p => p.StartsWith("Host RAM", StringComparison.Ordinal));
        Assert.Empty(roomy);
    }

    [Fact]
    public void Given_NvmeOffloadAndLittleFreeSpace_When_Checked_Then_NvmeIsRefused()
    {
        var settings = new TrainingSettings { ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/tmp/x", MicroBatch = 1, SeqLen = 128 };

        var problems = RunCapacity.Problems(Gpt2, settings, new EngineOptions(), null, new LocalResources(Bytes.FromGiB(512), Bytes.FromMiB(10)));

        Assert.Contains(problems, p => p.StartsWith("NVMe: needs", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_ACudaDeviceHeldToAGpuMemoryLimit_When_Checked_Then_TheDeviceMemoryIsRefusedNamingTheLimit()
    {
        var options = new EngineOptions { Device = "cuda", GpuMemoryLimit = Bytes.FromGiB(1) };

        var problems = RunCapacity.Problems(Gpt2, Big, options, ProfileCatalog.Default.Load("h200-1x"), new LocalResources(Bytes.FromGiB(512), null));

        Assert.Contains(problems, p => p.StartsWith("--gpu-memory-limit", StringComparison.Ordinal) && p.Contains("GPU memory", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_ACpuDeviceWithAGpuProfile_When_TheMachineIsBuilt_Then_ItHasNoGpuSoActivationsCountAsHostRam()
    {
        HardwareProfile machine = RunCapacity.ThisMachine(ProfileCatalog.Default.Load("h200-1x"), new EngineOptions(), Big, new LocalResources(Bytes.FromGiB(20), null));

        Assert.False(machine.HasGpu);
        Assert.Equal(20, machine.Cpu.Ram.GiB, 3);
    }

    [Fact]
    public void Given_a_gpu_memory_limit_above_the_card_When_this_machine_is_described_Then_the_card_s_memory_stays()
    {
        HardwareProfile card = ProfileCatalog.Default.Load("h100-1x-vm");
        var above = RunCapacity.ThisMachine(card, new EngineOptions { Device = "cuda", GpuMemoryLimit = Bytes.FromGiB(120) }, Big, new LocalResources(Bytes.FromGiB(64), null));
        var below = RunCapacity.ThisMachine(card, new EngineOptions { Device = "cuda", GpuMemoryLimit = Bytes.FromGiB(11) }, Big, new LocalResources(Bytes.FromGiB(64), null));

        Assert.Equal(card.Gpu!.MemoryGib.Value, above.Gpu!.MemoryGib.Value);
        Assert.Equal(11, below.Gpu!.MemoryGib.Value, 6);
    }
}
