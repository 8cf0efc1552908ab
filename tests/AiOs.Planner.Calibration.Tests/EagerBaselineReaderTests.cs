using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Calibration.Tests;

public class EagerBaselineReaderTests
{
    private const string Good = """{"impl":"torch-eager","model":"gpt2","micro_batch":4,"seq_len":1024,"precision":"fp32","grad_checkpointing":true,"median_ms":52.5,"error":null}""";

    [Fact]
    public void Given_the_bench_lines_When_read_Then_other_impls_and_failed_runs_are_skipped_and_defaults_filled()
    {
        string[] lines =
        [
            Good,
            """{"impl":"aios","model":"gpt2","micro_batch":4,"seq_len":1024,"median_ms":40}""",
            "",
            """{"impl":"torch-eager","model":"gpt2-xl","micro_batch":8,"seq_len":1024,"median_ms":0,"error":"CUDA out of memory"}""",
            """{"impl":"torch-eager","model":"gpt2-xl","micro_batch":2,"seq_len":1024,"median_ms":120.25}""",
            """{"plan":"torch-eager","model":"gpt2","micro_batch":8,"seq_len":1024}""",
        ];

        var file = EagerBaselineReader.Parse(lines, "b.jsonl");

        Assert.Equal(2, file.Rows.Count);
        Assert.Equal(new EagerBaseline("gpt2", 4, 1024, Precision.Fp32, true, 52.5, "b.jsonl line 1"), file.Rows[0]);
        Assert.Equal(new EagerBaseline("gpt2-xl", 2, 1024, Precision.Bf16, false, 120.25, "b.jsonl line 5"), file.Rows[1]);
        Assert.Equal(3, file.Skipped.Count);
        Assert.Contains("--dry-run", file.Skipped[2]);
        Assert.Contains("line 4", file.Skipped[1]);
        Assert.Contains("CUDA out of memory", file.Skipped[1]);
    }

    [Theory]
    [InlineData("{\"impl\":\"torch-eager\",", "not a JSON object")]
    [InlineData("[1,2]", "not an object")]
    [InlineData("{\"model\":\"gpt2\"}", "\"impl\" is missing")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"seq_len\":1024,\"median_ms\":5}", "\"micro_batch\" is missing")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"micro_batch\":0,\"seq_len\":1024,\"median_ms\":5}", "\"micro_batch\" is 0")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"micro_batch\":1,\"seq_len\":1024,\"median_ms\":\"5\"}", "\"median_ms\" must be a positive number")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"micro_batch\":1,\"seq_len\":1024,\"median_ms\":-5}", "\"median_ms\" must be a positive number")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"micro_batch\":1,\"seq_len\":1024,\"median_ms\":5,\"precision\":\"fp16\"}", "\"precision\" is \"fp16\"")]
    [InlineData("{\"impl\":\"torch-eager\",\"model\":\"gpt2\",\"micro_batch\":1,\"seq_len\":1024,\"median_ms\":5,\"grad_checkpointing\":\"yes\"}", "\"grad_checkpointing\" is \"yes\"")]
    public void Given_a_malformed_line_When_read_Then_the_error_names_the_file_the_line_and_the_problem(string bad, string expected)
    {
        var e = Assert.Throws<CalibrationException>(() => EagerBaselineReader.Parse([Good, bad], "runs/b.jsonl"));

        Assert.StartsWith("runs/b.jsonl line 2:", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Given_a_missing_file_When_read_Then_the_error_names_it_and_the_flag()
    {
        string path = Path.Combine(Path.GetTempPath(), $"aios-no-such-{Guid.NewGuid():N}.jsonl");

        var e = Assert.Throws<CalibrationException>(() => EagerBaselineReader.Read(path));

        Assert.Contains(path, e.Message);
        Assert.Contains("--baselines", e.Message);
    }
}
