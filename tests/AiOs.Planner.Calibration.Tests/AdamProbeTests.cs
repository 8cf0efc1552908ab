using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Host;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Hardware;
using AiOs.Planner.Optim;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>The Adam probe runs the kernel the engine runs for bf16 training, and the profile keeps its figure beside the fp32 one.</summary>
public class AdamProbeTests
{
    private static readonly AdamHyperParameters Hp = new();

    [Fact]
    public void Given_the_bf16_kernel_When_the_probe_steps_Then_it_reads_bf16_gradients_and_writes_the_bf16_copy_as_CpuAdam_StepBf16Gradients_does()
    {
        const int n = 70_000; // past one 64 K-element chunk, so the threaded path runs
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.Bf16Gradients, n);
        float[] p = state.Master(0, n).ToArray(), m = state.M(0, n).ToArray(), v = state.V(0, n).ToArray();
        ushort[] g = state.Bf16Gradients(0, n).ToArray(), bf16 = new ushort[n];
        Assert.Contains(g, x => x != 0);

        state.Step(0, n, 1, Hp, 2);
        CpuAdam.StepBf16Gradients(p, g, m, v, bf16, 1, Hp, 1);

        Assert.Equal(p, state.Master(0, n).ToArray());
        Assert.Equal(m, state.M(0, n).ToArray());
        Assert.Equal(bf16, state.Bf16Copy(0, n).ToArray());
        Assert.Contains(bf16, x => x != 0);
        Assert.True(state.Fp32Gradients(0, n).IsEmpty);
    }

    [Fact]
    public void Given_the_fp32_kernel_When_the_probe_steps_Then_it_runs_CpuAdam_Step_on_fp32_gradients_with_no_bf16_copy()
    {
        const int n = 1000;
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.Fp32Gradients, n);
        float[] p = state.Master(0, n).ToArray(), g = state.Fp32Gradients(0, n).ToArray(), m = new float[n], v = new float[n];

        state.Step(0, n, 1, Hp, 1);
        CpuAdam.Step(p, g, m, v, 1, Hp, 1);

        Assert.Equal(p, state.Master(0, n).ToArray());
        Assert.True(state.Bf16Copy(0, n).IsEmpty);
        Assert.True(state.Bf16Gradients(0, n).IsEmpty);
    }

    [Fact]
    public void Given_a_sub_group_offset_When_the_probe_steps_Then_only_that_sub_group_changes()
    {
        const int n = 1000;
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.Bf16Gradients, n);
        float[] before = state.Master(0, n).ToArray();

        state.Step(400, 300, 1, Hp, 1);

        float[] after = state.Master(0, n).ToArray();
        Assert.Equal(before[..400], after[..400]);
        Assert.Equal(before[700..], after[700..]);
        Assert.NotEqual(before[400..700], after[400..700]);
        Assert.All(state.Bf16Copy(0, 400).ToArray(), x => Assert.Equal(0, x));
        Assert.Contains(state.Bf16Copy(400, 300).ToArray(), x => x != 0);
    }

    [Theory]
    [InlineData(10, 4, new long[] { 0, 4, 8 }, new[] { 4, 4, 2 })]
    [InlineData(8, 8, new long[] { 0 }, new[] { 8 })]
    [InlineData(5, 100, new long[] { 0 }, new[] { 5 })]
    public void Given_parameters_and_a_sub_group_size_When_cut_Then_the_runs_cover_them_once_in_order(long parameters, long subGroup, long[] offsets, int[] counts)
    {
        var groups = AdamProbe.SubGroups(parameters, subGroup);
        Assert.Equal(offsets, groups.Select(x => x.Offset));
        Assert.Equal(counts, groups.Select(x => x.Count));
    }

    [Fact]
    public void Given_the_8bit_kernel_When_the_probe_steps_sub_groups_Then_it_runs_BlockwiseAdam_as_the_engine_does_with_each_sub_groups_blocks()
    {
        const int n = 3 * BlockwiseQuantization.BlockSize + 100, subGroup = 2 * BlockwiseQuantization.BlockSize; // two sub-groups, the second ragged
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.EightBit, n);
        float[] p = state.Master(0, n).ToArray(), g = state.Fp32Gradients(0, n).ToArray();
        Assert.Contains(g, x => x != 0);
        Assert.True(state.M(0, n).IsEmpty);

        foreach (var (offset, count) in AdamProbe.SubGroups(n, subGroup)) state.Step(offset, count, 1, Hp, 2);

        long blocks = BlockwiseQuantization.Blocks(n);
        byte[] mCodes = new byte[n], vCodes = new byte[n];
        float[] mScales = new float[blocks], vScales = new float[blocks];
        ushort[] bf16 = new ushort[n];
        int firstBlocks = (int)BlockwiseQuantization.Blocks(subGroup);
        BlockwiseAdam.Step(p.AsSpan(0, subGroup), g.AsSpan(0, subGroup), mCodes.AsSpan(0, subGroup), mScales.AsSpan(0, firstBlocks),
            vCodes.AsSpan(0, subGroup), vScales.AsSpan(0, firstBlocks), bf16.AsSpan(0, subGroup), 1, Hp, 1f, 1);
        BlockwiseAdam.Step(p.AsSpan(subGroup), g.AsSpan(subGroup), mCodes.AsSpan(subGroup), mScales.AsSpan(firstBlocks),
            vCodes.AsSpan(subGroup), vScales.AsSpan(firstBlocks), bf16.AsSpan(subGroup), 1, Hp, 1f, 1);

        Assert.Equal(p, state.Master(0, n).ToArray());
        Assert.Equal(mCodes, state.MCodes(0, n).ToArray());
        Assert.Equal(bf16, state.Bf16Copy(0, n).ToArray());
        Assert.Contains(mCodes, x => x != mCodes[0]);
    }

    [Fact]
    public void Given_an_8bit_sub_group_off_a_block_boundary_When_stepped_Then_it_is_refused_rather_than_sharing_a_scale()
    {
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.EightBit, 3 * BlockwiseQuantization.BlockSize);
        var e = Assert.Throws<ArgumentException>(() => state.Step(1000, 1000, 1, Hp, 1));
        Assert.Contains("block boundary", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_the_fp16_kernel_When_the_probe_steps_Then_it_runs_the_engines_fp16_update_and_writes_the_fp16_copy_of_the_master()
    {
        const int n = 3000;
        using var state = new AdamProbe.ProbeState(AdamProbeKernel.Fp16Copy, n);
        float[] p = state.Master(0, n).ToArray(), g = state.Fp32Gradients(0, n).ToArray();
        float[] m = new float[n], v = new float[n];
        var fp16 = new Half[n];
        Assert.True(state.Bf16Copy(0, n).IsEmpty);

        foreach (var (offset, count) in AdamProbe.SubGroups(n, 1024)) state.Step(offset, count, 1, Hp, 2);
        CpuAdam.Step(p, g, m, v, fp16, 1, Hp, 1);

        Assert.Equal(p, state.Master(0, n).ToArray());
        Assert.Equal(fp16, state.Fp16Copy(0, n).ToArray());
        Assert.Equal(p.Select(x => (Half)x), state.Fp16Copy(0, n).ToArray());
        Assert.Equal(30, AdamProbe.BytesMoved(AdamProbeKernel.Fp16Copy));
    }

    [Theory]
    [InlineData(AdamProbeKernel.Bf16Gradients)]
    [InlineData(AdamProbeKernel.Fp32Gradients)]
    [InlineData(AdamProbeKernel.Fp16Copy)]
    [InlineData(AdamProbeKernel.EightBit)]
    public void Given_either_kernel_When_measured_Then_the_rate_is_positive_and_finite(AdamProbeKernel kernel)
    {
        double rate = AdamProbe.Measure(kernel, 200_000, 64_000, 2, TimeSpan.FromMilliseconds(20), CancellationToken.None);
        Assert.True(rate > 0 && double.IsFinite(rate), $"rate {rate}");
    }

    private static readonly MachineFacts Machine = new()
    {
        CpuModel = "Test CPU",
        Cores = 16,
        Ram = Bytes.FromGiB(128),
        Storage = new StorageFacts { Path = "/mnt/nvme", FileSystem = "xfs", BlockDevice = "nvme0n1", DeviceModel = "Fast SSD", Rotational = false, DirectIo = true, Total = Bytes.FromGB(2000), Free = Bytes.FromGB(1500) },
    };

    private static DriveCalibration Drive()
    {
        var samples = Synthetic.Samples(5, 512, 0);
        return new DriveCalibration
        {
            TestFileSize = Bytes.FromGiB(4), DirectIo = true, Layout = [],
            ReadSamples = samples, ReadCurve = DriveCurveFit.Fit(samples), WriteSamples = samples, WriteCurve = DriveCurveFit.Fit(samples),
            Cache = new CacheFinding(null, null),
        };
    }

    private static readonly HostCalibration Host = new()
    {
        Threads = 16, MemcpyOneThread = Bandwidth.FromGBps(10), MemcpyAllThreads = Bandwidth.FromGBps(40), AdamOneThread = 3e8, AdamAllThreads = 4.96e9,
        AdamBf16OneThread = 2.5e8, AdamBf16AllThreads = 4.04e9, AdamBf16SubGroup = 32L << 20,
    };

    [Fact]
    public void Given_a_bf16_measurement_When_the_profile_is_built_Then_both_figures_are_measured_with_their_kernels_named()
    {
        var profile = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-05" }, Machine, Drive(), Host);

        Assert.Equal(4.96e9, profile.Cpu.AdamParamsPerS.Value);
        var bf16 = profile.Cpu.AdamBf16ParamsPerS!;
        Assert.Equal(4.04e9, bf16.Value);
        Assert.Equal(FigureSource.Measured, bf16.Provenance!.Source);
        Assert.Contains("StepBf16Gradients", bf16.Provenance.Method, StringComparison.Ordinal);
        Assert.Contains("32 M-parameter sub-groups", bf16.Provenance.Method, StringComparison.Ordinal);
        Assert.Contains("fp32 gradients", profile.Cpu.AdamParamsPerS.Provenance!.Method, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_an_8bit_measurement_When_the_profile_is_built_Then_the_8bit_rate_is_measured_and_replaces_the_default_ratio()
    {
        var withEight = Host with { Adam8OneThread = 2.9e8, Adam8AllThreads = 4.4e9 };
        var profile = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-05" }, Machine, Drive(), withEight);
        Assert.Equal(4.4e9, profile.Cpu.Adam8Rate.Value);
        Assert.Equal(FigureSource.Measured, profile.Cpu.Adam8Rate.Provenance!.Source);
        Assert.Contains("BlockwiseAdam", profile.Cpu.Adam8Rate.Provenance.Method, StringComparison.Ordinal);

        var noEight = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-05" }, Machine, Drive(), Host);
        Assert.Equal(4.96e9 * CpuSpec.DefaultAdam8Ratio, noEight.Cpu.Adam8Rate.Value, 1);
    }

    [Fact]
    public void Given_an_fp16_measurement_When_the_profile_is_built_Then_fp16_training_is_priced_at_it_and_without_one_at_the_default_ratio()
    {
        var withFp16 = Host with { AdamFp16OneThread = 2.2e8, AdamFp16AllThreads = 3.6e9 };
        var profile = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-08" }, Machine, Drive(), withFp16);
        var fp16 = profile.Cpu.AdamFp16ParamsPerS!;
        Assert.Equal(3.6e9, fp16.Value);
        Assert.Equal(FigureSource.Measured, fp16.Provenance!.Source);
        Assert.Contains("fp16 copy written: 30 B", fp16.Provenance.Method, StringComparison.Ordinal);
        Assert.Equal(3.6e9, profile.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Fp16Copy));
        profile.Validated("fp16.json");

        var without = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-08" }, Machine, Drive(), Host);
        Assert.Null(without.Cpu.AdamFp16ParamsPerS);
        Assert.Equal(4.96e9 * CpuSpec.DefaultAdamFp16Ratio, without.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Fp16Copy), 1);
    }

    [Fact]
    public void Given_one_thread_beating_all_on_a_busy_machine_When_built_Then_the_bf16_figure_is_the_better()
    {
        var busy = Host with { AdamBf16OneThread = 9e8, AdamBf16AllThreads = 6e8 };
        var profile = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-05" }, Machine, Drive(), busy);
        Assert.Equal(9e8, profile.Cpu.AdamBf16ParamsPerS!.Value);
    }

    [Fact]
    public void Given_no_bf16_measurement_When_built_Then_the_profile_has_no_bf16_figure_and_falls_back_to_the_fp32_one()
    {
        var fp32Only = Host with { AdamBf16OneThread = null, AdamBf16AllThreads = null, AdamBf16SubGroup = 0 };
        var profile = ProfileBuilder.Build(new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-12-05" }, Machine, Drive(), fp32Only);
        Assert.Null(profile.Cpu.AdamBf16ParamsPerS);
        Assert.Equal(4.96e9, profile.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Bf16Gradients));
    }

    [Fact]
    public void Given_call_sizes_When_the_probe_times_each_over_one_state_Then_8_bit_sizes_hold_whole_blocks_and_none_exceeds_the_state()
    {
        long block = BlockwiseQuantization.BlockSize;
        var seen = new List<long>();
        var rates = AdamProbe.MeasureSubGroups(AdamProbeKernel.EightBit, 8 * block, [block / 2, 3 * block + 5, 3 * block, 100 * block], 1,
            TimeSpan.FromMilliseconds(5), CancellationToken.None, (size, _) => seen.Add(size));

        Assert.Equal([block, 3 * block, 8 * block], rates.Select(r => r.SubGroup));
        Assert.Equal(seen, rates.Select(r => r.SubGroup));
        Assert.All(rates, r => Assert.True(r.Rate > 0));
        Assert.Throws<ArgumentException>(() => AdamProbe.MeasureSubGroups(AdamProbeKernel.Bf16Gradients, 1000, [], 1, TimeSpan.Zero, CancellationToken.None));
    }
}
