using System.CommandLine;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

/// <summary>How <see cref="SettingsOptions.Build"/> turns the flags the user typed into settings: defaults, and typed flags over implied ones.</summary>
public sealed class SettingsOptionsTests
{
    private static TrainingSettings Build(params string[] args)
    {
        var options = new SettingsOptions();
        var command = new RootCommand();
        options.AddTo(command);
        var r = command.Parse(args);
        Assert.Empty(r.Errors);
        return options.Build(r);
    }

    [Fact]
    public void Given_no_seq_len_When_built_for_a_model_shorter_than_1024_Then_the_model_maximum_is_used()
    {
        var s = Build("--model", "tiny-gpt", "--hardware", "ci-2core-24gb");

        Assert.Equal(128, s.SeqLen);
    }

    [Fact]
    public void Given_no_seq_len_When_built_for_a_long_model_Then_1024_is_used()
    {
        var s = Build("--model", "llama-2-7b", "--hardware", "ci-2core-24gb");

        Assert.Equal(1024, s.SeqLen);
    }

    [Fact]
    public void Given_an_explicit_seq_len_above_the_model_maximum_When_built_Then_the_error_names_seq_len()
    {
        var e = Assert.Throws<DescriptionException>(() => Build("--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--seq-len", "512"));

        Assert.Contains("--seq-len", e.Message);
        Assert.Contains("128", e.Message);
    }

    private static SettingsResolution BuildWithNotes(params string[] args)
    {
        var options = new SettingsOptions();
        var command = new RootCommand();
        options.AddTo(command);
        var r = command.Parse(args);
        Assert.Empty(r.Errors);
        return options.BuildWithNotes(r);
    }

    [Fact]
    public void Given_zero2_cpu_optimizer_and_a_path_When_built_Then_the_path_does_not_imply_a_parameter_offload()
    {
        var s = Build("--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "zero2", "--offload-optimizer", "cpu", "--nvme-offload-path", "/nvme");

        Assert.Equal(ZeroStage.Zero2, s.ZeroStage);
        Assert.Equal(OffloadTier.None, s.ParamOffload);
        Assert.Equal(OffloadTier.Cpu, s.OptimizerOffload);
    }

    [Fact]
    public void Given_zero1_nvme_optimizer_and_a_path_When_planned_Then_no_parameter_offload_is_blamed()
    {
        var s = Build("--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "zero1", "--offload-optimizer", "nvme", "--nvme-offload-path", "/nvme");
        var problems = SettingsRules.Check(s, Models.ModelCatalog.Default.Load("gpt2"), Hardware.ProfileCatalog.Default.Load("h200-1x"));

        Assert.Equal(OffloadTier.None, s.ParamOffload);
        Assert.DoesNotContain(problems, p => p.Message.Contains("parameter offload"));
    }

    [Fact]
    public void Given_infinity_alone_When_built_Then_parameters_and_optimizer_go_to_nvme_in_the_default_folder_with_a_note()
    {
        var b = BuildWithNotes("--model", "llama-2-13b", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "infinity");

        Assert.Equal(OffloadTier.Nvme, b.Settings.ParamOffload);
        Assert.Equal(OffloadTier.Nvme, b.Settings.OptimizerOffload);
        Assert.Equal(DefaultOffloadFolder.Path(System.Environment.CurrentDirectory), b.Settings.NvmePath);
        Assert.Contains(b.Notes, n => n.Contains(DefaultOffloadFolder.Name) && n.Contains("NVMe drive") && n.Contains("--nvme-offload-path"));
    }

    [Fact]
    public void Given_infinity_and_no_nvme_params_When_built_Then_only_the_optimizer_goes_to_nvme()
    {
        var s = Build("--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "infinity", "--no-nvme-offload-params");

        Assert.Equal(OffloadTier.None, s.ParamOffload);
        Assert.Equal(OffloadTier.Nvme, s.OptimizerOffload);
    }

    [Fact]
    public void Given_zero3_and_a_path_When_built_Then_zero3_is_kept_and_the_note_says_why()
    {
        var b = BuildWithNotes("--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "zero3", "--nvme-offload-path", "/nvme");

        Assert.Equal(ZeroStage.Zero3, b.Settings.ZeroStage);
        Assert.Equal(OffloadTier.Nvme, b.Settings.ParamOffload);
        Assert.Contains(b.Notes, n => n.Contains("kept zero3"));
    }
}
