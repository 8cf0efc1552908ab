using AiOs.Planner.Calibration.Benchmarks;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class MachineFactsTests
{
    [Fact]
    public void Given_proc_cpuinfo_When_parsed_Then_the_first_model_name_is_taken()
    {
        Assert.Equal("AMD EPYC 9654", MachineFacts.CpuModelFrom("processor\t: 0\nmodel name\t: AMD EPYC 9654\nprocessor\t: 1\nmodel name\t: other\n"));
    }

    [Fact]
    public void Given_proc_meminfo_When_parsed_Then_MemTotal_is_in_KiB()
    {
        Assert.Equal(Bytes.FromKiB(24684092), MachineFacts.RamFrom("MemTotal:       24684092 kB\nMemFree: 1 kB\n"));
    }
}

public class FioRunnerTests
{
    [Fact]
    public void Given_fio_json_with_a_note_before_it_When_parsed_Then_the_directions_bandwidth_is_read()
    {
        const string output = "note: something\n{\"jobs\":[{\"read\":{\"bw_bytes\":1500000000},\"write\":{\"bw_bytes\":0}}]}";
        Assert.Equal(1.5, FioRunner.ParseBandwidth(output, IoDirection.Read).GBps, 1e-9);
    }

    [Fact]
    public void Given_a_region_When_arguments_are_built_Then_they_name_libaio_direct_io_offset_and_size()
    {
        var args = FioRunner.Arguments("/d/f", Bytes.FromGiB(1), Bytes.FromGiB(1), Bytes.FromMiB(1), 8, IoDirection.Write);
        Assert.Contains("--ioengine=libaio", args);
        Assert.Contains("--direct=1", args);
        Assert.Contains("--offset=1073741824", args);
        Assert.Contains("--iodepth=8", args);
        Assert.Contains("--rw=write", args);
    }
}

public class SequentialBenchmarkReportTests
{
    private static BenchmarkRun Run(string tool, int repeat, double gbps) => new(tool, IoDirection.Read, repeat, Bytes.Zero, Bandwidth.FromGBps(gbps));

    [Fact]
    public void Given_runs_of_both_tools_When_paired_Then_each_repeat_is_compared_with_its_own_partner()
    {
        var report = new SequentialBenchmarkReport(new SequentialBenchmarkOptions { Directory = "/d" }, Bytes.Zero,
            [Run("aios", 1, 1.0), Run("fio", 1, 2.0), Run("aios", 2, 3.0), Run("fio", 2, 3.0), Run("aios", 3, 0.9), Run("fio", 3, 1.0)], [], "fio-3");

        Assert.Equal([0.5, 0.9, 1.0], report.PairedRatios(IoDirection.Read));
        Assert.Equal(0.9, report.PairedRatio(IoDirection.Read)!.Value, 1e-12);
        Assert.Equal((0.7, 0.95), report.PairedRatioQuartiles(IoDirection.Read));
        Assert.Equal(1.0, report.Median("aios", IoDirection.Read)!.Value.GBps, 1e-12);
        Assert.Null(report.PairedRatio(IoDirection.Write));
    }
}
