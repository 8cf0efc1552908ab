using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Runs;

namespace AiOs.Planner.Engine.Tests;

public sealed class RunIdTests
{
    [Theory]
    [InlineData("x/..")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("../victim")]
    [InlineData("/etc")]
    [InlineData("a\\b")]
    [InlineData("new\nline")]
    [InlineData("nul\0")]
    [InlineData("ünï")]
    [InlineData(".hidden")]
    [InlineData("...")]
    public void Given_AnIdThatIsNotAPlainName_When_SetOnEngineOptions_Then_ItIsRefusedNamingTheRule(string id)
    {
        var e = Assert.Throws<ArgumentException>(() => new EngineOptions { RunId = id });

        Assert.Contains("A-Z a-z 0-9 . _ -", e.Message);
    }

    [Theory]
    [InlineData("run-1")]
    [InlineData("my_run.2026-12-05")]
    [InlineData("9.lives")]
    public void Given_APlainName_When_Checked_Then_ItIsAcceptedAndStaysInsideTheRunsFolder(string id)
    {
        string root = Path.GetFullPath("runs");

        Assert.Null(RunId.Problem(id));
        Assert.Equal(root, Path.GetDirectoryName(Path.GetFullPath(Path.Combine(root, id))));
    }

    [Fact]
    public void Given_AnIdOneOverTheLimit_When_Checked_Then_ItIsRefusedAndOneAtTheLimitIsNot()
    {
        Assert.Null(RunId.Problem(new string('a', RunId.MaxLength)));
        Assert.Contains($"more than {RunId.MaxLength}", RunId.Problem(new string('a', RunId.MaxLength + 1)));
    }

    [Fact]
    public void Given_NoId_When_EngineOptionsAreMade_Then_TheGeneratedIdIsAPlainName()
    {
        Assert.Null(RunId.Problem(new EngineOptions().RunId));
    }
}
