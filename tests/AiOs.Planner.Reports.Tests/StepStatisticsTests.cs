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
        Assert.Empty(StepStatistics.Caveats(spread, 0.5, 1.9, 2));
    }

    [Fact]
    public void Given_steps_varying_tenfold_When_judged_Then_the_caveat_names_the_spread()
    {
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(100, 1), new StepSample(1000, 1)]);
        string caveat = Assert.Single(StepStatistics.Caveats(spread, null, null, 0));
        Assert.Contains("varied", caveat);
        Assert.Contains("max 1000 ms", caveat);
    }

    [Fact]
    public void Given_a_load_average_above_the_cores_at_the_end_When_judged_Then_the_caveat_names_the_load()
    {
        var spread = StepStatistics.Spread([new StepSample(100, 1), new StepSample(10, 1), new StepSample(10, 1)]);
        string caveat = Assert.Single(StepStatistics.Caveats(spread, 0.3, 3.5, 2));
        Assert.Contains("load average was 3.50 on 2 cores", caveat);
        Assert.Contains("start 0.30", caveat);
    }
}
