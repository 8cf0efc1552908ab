using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class TestFileTests
{
    [Fact]
    public void Given_plenty_of_space_When_planned_Then_the_desired_size_is_used()
    {
        var (size, note) = TestFile.PlanSize(Bytes.FromGiB(4), Bytes.FromGiB(1), Bytes.FromGiB(50), "/d");
        Assert.Equal(Bytes.FromGiB(4), size);
        Assert.Null(note);
    }

    [Fact]
    public void Given_less_space_than_desired_When_planned_Then_the_file_shrinks_and_says_so()
    {
        var (size, note) = TestFile.PlanSize(Bytes.FromGiB(4), Bytes.FromGiB(1), Bytes.FromGiB(2), "/d");
        Assert.Equal(Bytes.FromMiB(1536), size);
        Assert.Contains("shrunk", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_too_little_space_When_planned_Then_it_stops_saying_how_much_is_needed()
    {
        var e = Assert.Throws<CalibrationException>(() => TestFile.PlanSize(Bytes.FromGiB(4), Bytes.FromGiB(1), Bytes.FromMiB(700), "/d"));
        Assert.Contains("Free 836.0 MiB", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_missing_folder_When_created_Then_the_error_says_so()
    {
        var e = Assert.Throws<CalibrationException>(() => TestFile.Create("/tmp/aios-missing-" + Guid.NewGuid(), Bytes.FromMiB(4), Bytes.FromMiB(4)));
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_test_file_When_disposed_Then_nothing_is_left_in_the_folder()
    {
        string dir = Directory.CreateTempSubdirectory("aios-tf-").FullName;
        try
        {
            using (var f = TestFile.Create(dir, Bytes.FromMiB(8), Bytes.FromMiB(8)))
            {
                Assert.True(File.Exists(f.Path));
                Assert.Equal(Bytes.FromMiB(8), f.File.Length);
            }
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
