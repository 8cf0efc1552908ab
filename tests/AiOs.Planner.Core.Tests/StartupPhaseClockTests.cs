using AiOs.Planner.Records;

namespace AiOs.Planner.Core.Tests;

/// <summary>Start-up phases carry the resident set read when each closed, so a run's record shows where its host memory grew.</summary>
public class StartupPhaseClockTests
{
    [Fact]
    public void Given_a_resident_reader_When_phases_are_marked_Then_each_phase_keeps_the_reading_taken_as_it_closed()
    {
        long reading = 100;
        var clock = new StartupPhaseClock(() => reading);

        clock.Mark("first");
        reading = 250;
        clock.Mark("second");

        Assert.Equal([("first", 100L), ("second", 250L)], clock.Phases.Select(p => (p.Name, p.ResidentBytes ?? -1)));
        Assert.All(clock.Phases, p => Assert.True(p.Seconds >= 0));
    }

    [Fact]
    public void Given_no_reader_When_a_phase_is_marked_Then_its_resident_set_is_unknown()
    {
        var clock = new StartupPhaseClock();
        clock.Mark("only");
        Assert.Null(Assert.Single(clock.Phases).ResidentBytes);
    }
}
