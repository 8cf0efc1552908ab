using AiOs.Planner.Learning;

namespace AiOs.Planner.Reports.Tests;

public sealed class RunHistoryTests
{
    [Fact]
    public void A_runs_folder_becomes_observations_with_the_mean_of_the_steps_after_the_first()
    {
        // Given a runs folder with one run (first step 1.5× the prediction, later steps 1.1×) and one without a prediction
        string root = Directory.CreateTempSubdirectory("aios-history-").FullName;
        try
        {
            Directory.Move(SyntheticRun.Create(), Path.Combine(root, "a-run"));
            Directory.Move(SyntheticRun.Create(withPrediction: false), Path.Combine(root, "b-unpredicted"));
            // When it is read as a history
            var (runs, skipped) = RunHistory.Load(root);
            // Then the run's labels are 1.1 per phase, and the other is skipped with its reason
            var run = Assert.Single(runs);
            Assert.Equal("a-run", run.RunId);
            foreach (var phase in Enum.GetValues<CorrectedPhase>())
                Assert.Equal(Math.Log(1.1), run.LogRatio(phase)!.Value, 3);
            Assert.Equal(2, run.Features.MicroBatch);
            Assert.Equal(Planner.Settings.OffloadTier.Nvme, run.Features.ParamOffload);
            Assert.Contains("b-unpredicted: no prediction.json", Assert.Single(skipped));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void A_run_whose_later_steps_disagree_several_fold_is_skipped_as_disturbed()
    {
        // Given a run whose last step took five times as long as the others
        string root = Directory.CreateTempSubdirectory("aios-history-").FullName;
        try
        {
            string dir = Path.Combine(root, "stalled");
            Directory.Move(SyntheticRun.Create(), dir);
            string metrics = Path.Combine(dir, "metrics.jsonl");
            var lines = File.ReadAllLines(metrics);
            var last = System.Text.Json.Nodes.JsonNode.Parse(lines[^1])!.AsObject();
            last["wall_ms"] = last["wall_ms"]!.GetValue<double>() * 5;
            lines[^1] = last.ToJsonString();
            File.WriteAllLines(metrics, lines);
            // When the history is read
            var (runs, skipped) = RunHistory.Load(root);
            // Then it is left out, saying why
            Assert.Empty(runs);
            Assert.Contains("likely busy", Assert.Single(skipped));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
