using AiOs.Planner.Descriptions;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>The executor field of the settings: default, settings-file round trip, validation.</summary>
public class ExecutorSettingsTests
{
    [Fact]
    public void Given_no_executor_When_settings_are_made_Then_the_bundled_engine_is_priced() =>
        Assert.Equal(ExecutorKind.Aios, new TrainingSettings().Executor);

    [Theory]
    [InlineData(ExecutorKind.Aios, "aios")]
    [InlineData(ExecutorKind.DeepSpeed, "deepspeed")]
    public void Given_an_executor_When_the_settings_file_is_written_and_read_Then_it_round_trips_by_name(ExecutorKind executor, string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"aios-executor-{Guid.NewGuid():N}.json");
        try
        {
            DescriptionJson.WriteFileAtomic(path, new TrainingSettings { Executor = executor });
            Assert.Contains($"\"executor\": \"{name}\"", File.ReadAllText(path));
            Assert.Equal(executor, DescriptionJson.ReadFile<TrainingSettings>(path).Executor);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("\"pytorch\"")]
    [InlineData("1")]
    public void Given_a_settings_file_with_an_unknown_executor_When_read_Then_the_error_names_the_field_and_the_choices(string value)
    {
        var path = Path.Combine(Path.GetTempPath(), $"aios-executor-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(path, $"{{\"executor\": {value}}}");
            var e = Assert.Throws<DescriptionException>(() => DescriptionJson.ReadFile<TrainingSettings>(path));
            Assert.Contains("$.executor", e.Message);
            Assert.Contains("aios, deepspeed", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Given_an_undefined_executor_When_validated_Then_the_flag_and_field_are_named()
    {
        var problems = SettingsValidator.FieldProblems(new TrainingSettings { Executor = (ExecutorKind)7 });

        var p = Assert.Single(problems);
        Assert.Equal("--executor", p.Flag);
        Assert.Equal("$.executor", p.Field);
    }
}
