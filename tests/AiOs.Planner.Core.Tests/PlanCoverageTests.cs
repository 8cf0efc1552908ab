using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

public class PlanCoverageTests
{
    public static TheoryData<string> Profiles() => new(ProfileCatalog.Default.Names());

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Given_every_bundled_model_on_a_profile_When_planned_Then_the_step_fields_are_reported(string profile)
    {
        var hardware = ProfileCatalog.Default.Load(profile);
        foreach (string name in ModelCatalog.Default.Names())
        {
            var model = ModelCatalog.Default.Load(name);
            var settings = new TrainingSettings { SeqLen = Math.Min(1024, model.MaxSeqLen), ActivationCheckpointing = true };
            var doc = PlanDocument.Build(TrainingPlanner.Plan(model, hardware, settings));
            var step = doc["step"];
            Assert.NotNull(step);
            Assert.True(step!["time_s"]!.GetValue<double>() > 0, $"{name} on {profile}");
            Assert.True(step["tokens_per_s"]!.GetValue<double>() > 0, $"{name} on {profile}");
            Assert.NotNull(step["bottleneck"]);
            Assert.NotNull(step["phases"]!["forward_s"]);
            Assert.NotNull(doc["traffic"]!["nvme_read_bytes"]);
            Assert.NotNull(doc["utilization"]);
        }
    }
}
