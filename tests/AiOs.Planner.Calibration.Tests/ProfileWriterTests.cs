using AiOs.Planner.Calibration;
using AiOs.Planner.Hardware;
using Xunit;

namespace AiOs.Planner.Calibration.Tests;

public class ProfileWriterTests
{
    [Theory]
    [InlineData("h100-1x-vm")]
    [InlineData("h200-1x-calibrated")]
    [InlineData("ci-2core-24gb-calibrated")]
    public void Given_a_profile_with_fitted_compute_When_written_Then_only_its_figures_are_written_and_it_reads_back_equal(string name)
    {
        HardwareProfile profile = ProfileCatalog.Default.Load(name);

        string json = ProfileWriter.ToJson(profile);
        string path = WriteTemp("");
        AiOs.Planner.Descriptions.DescriptionJson.WriteFileAtomic(path, profile); // calibrate-gpu's and calibrate-cpu's writer
        Assert.Equal(json, File.ReadAllText(path));

        // The durations computed from the figures (layer_launch_floor from layer_launch_floor_us, …) are not part of the format:
        // written, they sat beside the figures in every calibrated profile and could be edited apart from them.
        foreach (string computed in new[] { "\"layer_overhead\"", "\"layer_launch_floor\"", "\"autograd_launch_floor\"", "\"backward_launch_floor\"", "\"step_overhead\"" })
            Assert.DoesNotContain(computed, json);
        Assert.Equal(json, ProfileWriter.ToJson(ProfileCatalog.Default.Load(WriteTemp(json))));
    }

    private static string WriteTemp(string json)
    {
        string path = Path.Combine(Path.GetTempPath(), $"aios-profile-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }
}
