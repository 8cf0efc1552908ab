using AiOs.Planner.Simulation.Kernel;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class SimKernelTests
{
    private static SimDuration Ns(long ns) => new(ns);

    [Fact]
    public void Given_two_processes_with_delays_When_run_Then_time_advances_exactly()
    {
        var kernel = new SimKernel();
        var log = new List<(string, long)>();
        IEnumerable<Wait> Worker(string name, long step)
        {
            for (int i = 0; i < 3; i++)
            {
                yield return Wait.For(Ns(step));
                log.Add((name, kernel.Now));
            }
        }
        kernel.Start(Worker("a", 10));
        kernel.Start(Worker("b", 15));
        kernel.Run();
        // At 30 both wake; b was scheduled first (at 15, a at 20), so b goes first.
        Assert.Equal([("a", 10L), ("b", 15L), ("a", 20L), ("b", 30L), ("a", 30L), ("b", 45L)], log);
        Assert.Equal(0, kernel.Unfinished);
    }

    [Fact]
    public void Given_processes_waiting_on_a_signal_When_it_fires_Then_they_wake_at_that_time_in_waiting_order()
    {
        var kernel = new SimKernel(signals: 1);
        var woke = new List<(string, long)>();
        IEnumerable<Wait> Waiter(string name)
        {
            yield return Wait.Until(0);
            woke.Add((name, kernel.Now));
        }
        IEnumerable<Wait> Firer()
        {
            yield return Wait.For(Ns(42));
            kernel.Fire(0);
        }
        kernel.Start(Waiter("first"));
        kernel.Start(Firer());
        kernel.Start(Waiter("second"));
        kernel.Run();
        Assert.Equal([("first", 42L), ("second", 42L)], woke);
        Assert.Equal(42, kernel.FiredAt(0));
    }

    [Fact]
    public void Given_a_wait_on_a_signal_that_already_fired_When_run_Then_it_continues_at_once()
    {
        var kernel = new SimKernel(signals: 1);
        long resumed = -1;
        IEnumerable<Wait> Late()
        {
            yield return Wait.For(Ns(100));
            yield return Wait.Until(0);
            resumed = kernel.Now;
        }
        IEnumerable<Wait> Early()
        {
            yield return Wait.For(Ns(5));
            kernel.Fire(0);
        }
        kernel.Start(Late());
        kernel.Start(Early());
        kernel.Run();
        Assert.Equal(100, resumed);
    }

    [Fact]
    public void Given_a_signal_that_never_fires_When_run_Then_the_blocked_process_is_reported()
    {
        var kernel = new SimKernel(signals: 1);
        IEnumerable<Wait> Stuck()
        {
            yield return Wait.Until(0);
        }
        kernel.Start(Stuck());
        kernel.Run();
        Assert.Equal(1, kernel.Unfinished);
    }

    [Fact]
    public void Given_a_level_tracker_When_levels_change_Then_it_keeps_the_peak_and_when()
    {
        var level = new LevelTracker(100, keepHistory: true);
        level.Change(5, 50);
        level.Change(7, -120);
        level.Change(9, 60);
        Assert.Equal(90, level.Level);
        Assert.Equal(150, level.Peak);
        Assert.Equal(5, level.PeakAt);
        Assert.Equal(4, level.History.Count);
    }
}
