using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace AiOs.Planner.Server.Tests;

/// <summary>
/// 50 concurrent plan requests against the server on localhost. It records the latencies (docs/benchmarks.md quotes
/// them) and asserts only what cannot depend on the machine's load: every answer is a 200 with the same document.
/// </summary>
public sealed class PlanLoadTests(ServerFixture server, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    public const int Concurrent = 50;

    [Fact]
    [Trait("Category", "Load")]
    public async Task Fifty_concurrent_plans_all_answer_the_same_document()
    {
        var body = new { model = "gpt2-xl", hardware = "h200-1x", settings = new { zero_stage = "zero2", optimizer_offload = "cpu", micro_batch = 8 } };
        await server.Post("/api/plan", body); // warm: JIT and the first learned-correction load are not what a user waits for
        var wall = Stopwatch.StartNew();
        var answers = await Task.WhenAll(Enumerable.Range(0, Concurrent).Select(async _ =>
        {
            long start = Stopwatch.GetTimestamp();
            var (status, text) = await server.Post("/api/plan", body);
            return (status, text, ms: Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }));
        wall.Stop();

        Assert.All(answers, a => Assert.Equal(200, a.status));
        Assert.Single(answers.Select(a => a.text).Distinct());
        var sorted = answers.Select(a => a.ms).Order().ToArray();
        double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Concurrent} concurrent POST /api/plan (gpt2-xl, h200-1x, zero2 + CPU optimizer, micro-batch 8): p50 {P(0.5):0} ms, p95 {P(0.95):0} ms, max {sorted[^1]:0} ms; all in {wall.Elapsed.TotalMilliseconds:0} ms ({Concurrent / wall.Elapsed.TotalSeconds:0.0} plans/s) on {System.Environment.ProcessorCount} cores"));
    }
}
