using AiOs.Planner.Engine.Metrics;

namespace AiOs.Planner.Engine.Tests;

/// <summary>A fact that reads Linux's <c>/proc</c>; reported as skipped elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "reads /proc, which only Linux has";
    }
}

/// <summary>The <c>/proc/stat</c> and <c>/proc/self/stat</c> parsers on sample text, and the live readers on Linux.</summary>
public sealed class ProcStatTests
{
    private const string Stat = """
        cpu  955146 183 134999 1205309 12206 40 3932 2073 0 0
        cpu0 477000 90 67000 602000 6000 20 1966 1036 0 0
        cpu1 478146 93 67999 603309 6206 20 1966 1037 0 0
        intr 123456 0 0
        ctxt 98765
        """;

    [Fact]
    public void Given_a_proc_stat_When_parsed_Then_busy_is_user_nice_system_irq_softirq_and_steal_of_the_cpu_line()
    {
        // user 955146 + nice 183 + system 134999 + irq 40 + softirq 3932 + steal 2073; idle and iowait left out, cpu0/cpu1 not added again
        Assert.Equal(955146L + 183 + 134999 + 40 + 3932 + 2073, ProcStat.MachineBusyTicks(Stat));
    }

    [Fact]
    public void Given_an_old_kernel_without_steal_When_parsed_Then_steal_counts_as_zero()
    {
        Assert.Equal(100L + 2 + 30 + 4 + 5, ProcStat.MachineBusyTicks("cpu  100 2 30 900 7 4 5\n"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("intr 1 2 3\n")]
    [InlineData("cpu  100 2 30\n")]
    [InlineData("cpu  100 2 thirty 900 7 4 5 6\n")]
    [InlineData("cpu  100 -2 30 900 7 4 5 6\n")]
    [InlineData("cpu  100 2 30 900 7 4 5 99999999999999999999\n")]
    [InlineData("cpu0 100 2 30 900 7 4 5 6\n")]
    public void Given_a_proc_stat_without_a_whole_cpu_line_When_parsed_Then_it_is_null(string text) =>
        Assert.Null(ProcStat.MachineBusyTicks(text));

    [Fact]
    public void Given_a_self_stat_When_parsed_Then_the_ticks_are_utime_plus_stime()
    {
        const string self = "14444 (dotnet) R 14441 14441 11412 0 -1 4194304 98 0 0 0 1234 567 8 9 20 0 31 0 1163470 3133440 390";
        Assert.Equal(1234L + 567, ProcStat.ProcessTicks(self));
    }

    [Fact]
    public void Given_a_command_name_with_spaces_and_brackets_When_parsed_Then_the_fields_are_counted_after_the_last_bracket()
    {
        const string self = "77 (a) b (c d)) S 1 77 77 0 -1 4194304 10 0 0 0 300 40 0 0 20 0 1 0 500 1000 90";
        Assert.Equal(340L, ProcStat.ProcessTicks(self));
    }

    [Theory]
    [InlineData("")]
    [InlineData("14444 dotnet R 14441")]
    [InlineData("14444 (dotnet) R 14441 14441 11412 0 -1 4194304 98 0 0 0")]
    [InlineData("14444 (dotnet) R 14441 14441 11412 0 -1 4194304 98 0 0 0 12x4 567")]
    public void Given_a_cut_off_or_odd_self_stat_When_parsed_Then_it_is_null(string text) =>
        Assert.Null(ProcStat.ProcessTicks(text));

    [Fact]
    public void Given_a_self_stat_When_the_parent_is_parsed_Then_it_is_field_four()
    {
        Assert.Equal(14441, ProcStat.ParentId("14444 (a (b) c) R 14441 14441 11412 0 -1 4194304 98 0 0 0 1234 567"));
        Assert.Null(ProcStat.ParentId("14444 (dotnet) R"));
        Assert.Null(ProcStat.ParentId("14444 (dotnet) R 99999999999"));
    }

    [Fact]
    public void Given_readings_of_a_group_When_taken_between_Then_only_processes_read_both_times_count_as_the_runs()
    {
        // Given rank 10 and 11 read twice, 12 only at the end (it started in between), 13 only at the start (it ended)
        var start = new CpuReading(10_000, new Dictionary<int, long> { [10] = 500, [11] = 700, [13] = 100 }, 100, 0);
        var end = new CpuReading(13_000, new Dictionary<int, long> { [10] = 1500, [11] = 1200, [12] = 5000 }, 100, System.Diagnostics.Stopwatch.Frequency * 10);
        // When the use between them is taken
        var use = CpuTimes.Between(start, end);
        // Then the run spent 10 + 5 s of the machine's 30 over 10 s: 1.5 cores its own, 1.5 other
        Assert.Equal((10.0, 30.0, 15.0), (use.WallSeconds, use.MachineBusySeconds, use.OwnSeconds));
        Assert.Equal(1.5, use.OtherCores, 9);
    }

    [LinuxFact]
    public void Given_linux_When_the_counters_are_read_twice_Then_they_are_there_and_never_run_backwards()
    {
        CpuReading first = Assert.IsType<CpuReading>(CpuTimes.Now(withSiblings: false));
        // Work between the readings so the process has CPU time to count (no timing is asserted).
        double sum = 0;
        for (int i = 1; i < 5_000_000; i++) sum += Math.Sqrt(i);
        CpuReading second = Assert.IsType<CpuReading>(CpuTimes.Now(withSiblings: false));

        long own = Assert.Single(first.ProcessTicks, p => p.Key == Environment.ProcessId).Value;
        Assert.True(own > 0 && first.MachineBusyTicks >= own && first.TicksPerSecond > 0, $"{first} ({sum})");
        var use = CpuTimes.Between(first, second);
        Assert.True(use.WallSeconds > 0 && use.OwnSeconds >= 0 && use.MachineBusySeconds >= 0, use.ToString());
        Assert.True(use.OwnCores >= 0 && use.OtherCores >= 0, use.ToString());
    }

    [LinuxFact]
    public void Given_linux_When_read_with_siblings_Then_this_process_is_among_them_and_every_figure_is_non_negative()
    {
        CpuReading reading = Assert.IsType<CpuReading>(CpuTimes.Now(withSiblings: true));
        Assert.Contains(Environment.ProcessId, reading.ProcessTicks.Keys);
        Assert.All(reading.ProcessTicks.Values, t => Assert.True(t >= 0));
    }
}
