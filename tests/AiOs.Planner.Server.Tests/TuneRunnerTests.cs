using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace AiOs.Planner.Server.Tests;

/// <summary>The tune endpoint's progress is the tuner's count, and a cancelled tune really stops.</summary>
public sealed class TuneRunnerTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    /// <summary>A search far longer than the test: llama-2-7b with NVMe offload and a budget it does not reach quickly.</summary>
    // About 8 s of search on an idle 2-core VM (7,127 candidates; llama-2-7b on the RTX 4090 took 3.6 s, short enough that a
    // loaded CI machine once read its first progress event after the search had ended, and the "busy" request found none).
    private object LongTune() => new
    {
        model = "llama-2-70b", hardware = "dgx-2", budget = 200_000,
        settings = new { nvme_path = Path.Combine(server.Nvme, "swap") },
    };

    private async Task<(HttpResponseMessage Response, StreamReader Reader)> Stream(object body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/tune")
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return (response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>Reads events until one named <paramref name="name"/> (whose data it returns) or the end (null).</summary>
    private static async Task<string?> Until(StreamReader reader, string name, List<string> seen)
    {
        string? current = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) current = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                seen.Add(current + " " + line[6..]);
                if (current == name) return line[6..];
            }
        }
        return null;
    }

    [Fact]
    public async Task A_cancelled_tune_stops_and_the_next_is_accepted_at_once()
    {
        var (response, reader) = await Stream(LongTune());
        using var _ = response;
        var seen = new List<string>();
        // Progress counts candidates: read until one says some were evaluated.
        long evaluated = 0;
        while (evaluated == 0)
        {
            string progress = await Until(reader, "progress", seen) ?? throw new Xunit.Sdk.XunitException("the stream ended: " + string.Join(" | ", seen));
            var doc = JsonDocument.Parse(progress).RootElement;
            Assert.Equal(200_000, doc.GetProperty("budget").GetInt32());
            evaluated = doc.GetProperty("evaluated").GetInt64();
        }

        var busy = await server.Post("/api/tune", new { model = "gpt2", hardware = "rtx4090-64gb-pcie4", budget = 120 });
        using var cancel = await server.Http.DeleteAsync("/api/tune");
        var (status, text) = await server.Post("/api/tune", new { model = "gpt2", hardware = "rtx4090-64gb-pcie4", settings = new { seq_len = 512 }, budget = 120 });

        Assert.Equal(409, busy.Status);
        Assert.Contains("DELETE /api/tune", ServerFixture.Error(busy.Text));
        Assert.Equal(200, (int)cancel.StatusCode);
        var stopped = JsonDocument.Parse(await cancel.Content.ReadAsStringAsync()).RootElement.GetProperty("evaluated").GetInt32();
        Assert.InRange(stopped, (int)evaluated, 200_000 - 1);
        Assert.NotNull(await Until(reader, "cancelled", seen));
        Assert.Equal(200, status);
        Assert.Contains("\"best\": {", text);
    }

    [Fact]
    public async Task Progress_events_count_up_and_the_result_follows()
    {
        var (response, reader) = await Stream(new { model = "gpt2", hardware = "rtx4090-64gb-pcie4", settings = new { seq_len = 512 }, budget = 3000 });
        using var _ = response;
        var seen = new List<string>();
        string result = await Until(reader, "result", seen) ?? throw new Xunit.Sdk.XunitException(string.Join(" | ", seen));

        var counts = seen.Where(s => s.StartsWith("progress ", StringComparison.Ordinal))
            .Select(s => JsonDocument.Parse(s[9..]).RootElement.GetProperty("evaluated").GetInt32()).ToList();
        for (int i = 1; i < counts.Count; i++) Assert.True(counts[i] >= counts[i - 1], string.Join(",", counts));
        Assert.StartsWith("{", result);
    }

    [Fact]
    public async Task Cancelling_when_no_tune_runs_is_404()
    {
        using var response = await server.Http.DeleteAsync("/api/tune");
        Assert.Equal(404, (int)response.StatusCode);
        Assert.Contains("No tune is running", await response.Content.ReadAsStringAsync());
    }
}
