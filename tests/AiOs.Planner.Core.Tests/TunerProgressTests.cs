using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

public class TunerProgressTests
{
    private static readonly TuneRequest Request = new()
    {
        Model = ModelCatalog.Default.Load("gpt2-xl"),
        Hardware = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4"),
        Budget = 1500,
        Base = new TrainingSettings { NvmePath = "/nvme" },
    };

    [Fact]
    public void Given_a_progress_callback_When_tuned_Then_counts_never_fall_and_end_at_the_evaluated_count()
    {
        var reports = new List<TuneProgress>();
        var result = Tuner.Tune(Request, reports.Add, CancellationToken.None);

        Assert.True(reports.Count > 2, $"only {reports.Count} reports");
        for (int i = 1; i < reports.Count; i++)
        {
            Assert.True(reports[i].Evaluated >= reports[i - 1].Evaluated, $"report {i}: {reports[i].Evaluated} after {reports[i - 1].Evaluated}");
            Assert.True(reports[i].BestTokensPerSecond >= reports[i - 1].BestTokensPerSecond);
        }
        Assert.All(reports, r => Assert.Equal(Request.Budget, r.Budget));
        Assert.Equal(result.Evaluated, reports[^1].Evaluated);
        Assert.Equal(result.Best!.TokensPerSecond, reports[^1].BestTokensPerSecond);
    }

    [Fact]
    public void Given_a_callback_and_a_token_When_tuned_Then_the_answer_is_the_one_without_them()
    {
        var plain = Tuner.Tune(Request);
        using var source = new CancellationTokenSource();
        var watched = Tuner.Tune(Request, _ => { }, source.Token);

        Assert.Equal(plain.Evaluated, watched.Evaluated);
        Assert.Equal(plain.Best!.Settings, watched.Best!.Settings);
        Assert.Equal(plain.DeepSpeedBest?.Settings, watched.DeepSpeedBest?.Settings);
    }

    [Fact]
    public void Given_a_token_cancelled_at_the_first_report_When_tuned_Then_it_throws_before_the_next_batch_and_short_of_the_budget()
    {
        using var source = new CancellationTokenSource();
        var reports = new List<TuneProgress>();
        Assert.ThrowsAny<OperationCanceledException>(() => Tuner.Tune(Request, p =>
        {
            reports.Add(p);
            source.Cancel();
        }, source.Token));

        var only = Assert.Single(reports);
        Assert.True(only.Evaluated < Request.Budget, $"{only.Evaluated} of {Request.Budget}");
    }

    [Fact]
    public void Given_a_token_already_cancelled_When_tuned_Then_nothing_is_evaluated()
    {
        var reports = new List<TuneProgress>();
        Assert.ThrowsAny<OperationCanceledException>(() => Tuner.Tune(Request, reports.Add, new CancellationToken(canceled: true)));
        Assert.Empty(reports);
    }
}
