using AiOs.Planner.Measurement;

namespace AiOs.Planner.Reports.Tests;

public sealed class StepStatisticsTests
{
    [Fact]
    public void Given_one_fast_step_among_slow_ones_When_throughput_is_taken_Then_it_is_total_tokens_over_total_time()
    {
        // Given 1,000 tokens per step: a warm-up step, one 0.1 s step and two 10 s steps (per-step rates 10,000, 100, 100)
        var steps = new[] { new StepSample(20_000, 1000), new StepSample(100, 1000), new StepSample(10_000, 1000), new StepSample(10_000, 1000) };
        // When the throughput is taken
        double rate = StepStatistics.TokensPerSecond(steps);
        // Then it is 3,000 tokens ÷ 20.1 s, not the mean of the rates (3,400)
        Assert.Equal(3000 / 20.1, rate, 6);
    }

    [Fact]
    public void Given_a_step_whose_loss_was_not_finite_When_throughput_and_spread_are_taken_Then_it_is_left_out()
    {
        var steps = new[] { new StepSample(50, 10), new StepSample(10, 10), new StepSample(10, 10), new StepSample(1, 10, Finite: false) };
        Assert.Equal(20 / 0.02, StepStatistics.TokensPerSecond(steps), 6);
        var spread = StepStatistics.Spread(steps)!;
        Assert.Equal(2, spread.Steps);
        Assert.Equal(10, spread.MinMs);
    }

    [Fact]
    public void Given_eleven_steady_steps_When_the_spread_is_taken_Then_the_percentiles_interpolate_between_ranks()
    {
        // Given a warm-up step and steps of 10, 20, …, 110 ms (in shuffled order)
        var walls = new[] { 60.0, 10, 110, 30, 20, 50, 40, 90, 70, 100, 80 };
        var steps = new[] { new StepSample(999, 1) }.Concat(walls.Select(w => new StepSample(w, 1))).ToList();
        var s = StepStatistics.Spread(steps)!;
        Assert.Equal((11, 10.0, 20.0, 60.0, 100.0, 110.0), (s.Steps, s.MinMs, s.P10Ms, s.P50Ms, s.P90Ms, s.MaxMs));
        Assert.Equal(5, s.Ratio, 9);
    }

    [Fact]
    public void Given_steps_within_the_bound_and_a_light_load_When_judged_Then_there_is_no_caveat()
    {
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(11, 1), new StepSample(12, 1)]);
        Assert.Empty(StepStatistics.Caveats(spread, null, 0.5, 1.9, 2));
    }

    [Fact]
    public void Given_steps_varying_tenfold_When_judged_Then_the_caveat_names_the_spread()
    {
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(100, 1), new StepSample(1000, 1)]);
        string caveat = Assert.Single(StepStatistics.Caveats(spread, null, null, null, 0));
        Assert.Contains("varied", caveat);
        Assert.Contains("max 1000 ms", caveat);
    }

    [Fact]
    public void Given_a_record_without_cpu_times_and_a_load_average_above_the_cores_at_the_end_When_judged_Then_the_caveat_names_the_load()
    {
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(10, 1)]);
        string caveat = Assert.Single(StepStatistics.Caveats(spread, null, 0.3, 3.5, 2));
        Assert.Contains("load average was 3.50 on 2 cores", caveat);
        Assert.Contains("start 0.30", caveat);
    }

    [Fact]
    public void Given_a_run_that_kept_every_core_busy_by_itself_When_judged_Then_there_is_no_caveat_though_the_load_was_high()
    {
        // Given 16 cores, a load average of 45.6 (the llama-2-13b run alone: CPU Adam and I/O threads), and over 100 s the
        // machine busy for 1,540 CPU seconds of which the run's own were 1,500 (0.4 core of other work)
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(11, 1)]);
        var cpu = new CpuUse(WallSeconds: 100, MachineBusySeconds: 1540, OwnSeconds: 1500);
        // When judged, Then the load averages are not consulted and nothing is wrong
        Assert.Empty(StepStatistics.Caveats(spread, cpu, 12.07, 45.60, 16));
    }

    [Fact]
    public void Given_other_processes_busy_on_three_cores_When_judged_Then_the_caveat_names_their_cores_and_the_runs()
    {
        // Given 16 cores and, over 200 s, 1,000 busy CPU seconds of which the run's were 400: 3.0 cores of other work (limit 1.6)
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(11, 1)]);
        var cpu = new CpuUse(WallSeconds: 200, MachineBusySeconds: 1000, OwnSeconds: 400);
        // When judged, even with a quiet load average at both ends
        string caveat = Assert.Single(StepStatistics.Caveats(spread, cpu, 1.0, 1.0, 16));
        // Then it names the other work's cores, the run's own and the limit
        Assert.Contains("other processes kept 3.0 cores busy", caveat);
        Assert.Contains("this run used 2.0 of 16", caveat);
        Assert.Contains("more than 1.6 cores", caveat);
        Assert.Contains("Rerun on a quiet machine", StepStatistics.Unreliable([caveat]));
    }

    [Theory]
    [InlineData(2, 0.5)]
    [InlineData(4, 0.5)]
    [InlineData(16, 1.6)]
    [InlineData(0, 0.5)]
    public void Given_a_core_count_When_the_limit_on_other_work_is_taken_Then_it_is_half_a_core_or_a_tenth_of_the_cores(int cores, double limit) =>
        Assert.Equal(limit, StepStatistics.MaxOtherCores(cores), 9);

    [Fact]
    public void Given_other_work_just_above_half_a_core_on_two_cores_When_judged_Then_the_caveat_is_given()
    {
        var cpu = new CpuUse(WallSeconds: 10, MachineBusySeconds: 16, OwnSeconds: 10);
        Assert.Contains("other processes kept 0.6 cores", Assert.Single(StepStatistics.Caveats(null, cpu, null, null, 2)));
        Assert.Empty(StepStatistics.Caveats(null, cpu with { MachineBusySeconds = 14 }, null, null, 2));
    }

    [Fact]
    public void Given_counters_read_a_moment_apart_When_the_machine_seems_less_busy_than_the_run_Then_other_work_is_zero()
    {
        var cpu = new CpuUse(WallSeconds: 10, MachineBusySeconds: 19.9, OwnSeconds: 20);
        Assert.Equal((0.0, 2.0), (cpu.OtherCores, cpu.OwnCores));
    }
}
