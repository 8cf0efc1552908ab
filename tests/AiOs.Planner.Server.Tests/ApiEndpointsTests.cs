using System.Net.Http.Headers;
using System.Text;

namespace AiOs.Planner.Server.Tests;

/// <summary>What the server refuses: paths outside its folders, paths given as names, bodies that are not JSON or too large, other hosts.</summary>
public sealed class ApiEndpointsTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("../models/gpt2.json")]
    [InlineData("models/gpt2.json")]
    public async Task A_model_given_as_a_path_is_refused_not_read(string path)
    {
        var (status, text) = await server.Post("/api/plan", new { model = path, hardware = "h200-1x" });

        Assert.Equal(400, status);
        Assert.Contains("paths are not accepted", ServerFixture.Error(text));
    }

    [Fact]
    public async Task An_uploaded_model_is_validated_like_a_file_on_disk()
    {
        string config = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "gpt2.json"));
        var good = await server.Post("/api/plan", "{\"model\": " + config + ", \"model_name\": \"mine\", \"hardware\": \"h200-1x\"}");
        var bad = await server.Post("/api/plan", "{\"model\": {\"model_type\": \"gpt2\", \"n_layer\": -3}, \"model_name\": \"config\", \"hardware\": \"h200-1x\"}");

        Assert.Equal(200, good.Status);
        Assert.Contains("\"feasible\"", good.Text);
        Assert.Equal(400, bad.Status);
        Assert.Contains("config.json", ServerFixture.Error(bad.Text));
    }

    [Fact]
    public async Task An_nvme_path_outside_the_roots_is_refused_and_one_inside_is_planned()
    {
        var settings = new { zero_stage = "infinity", param_offload = "nvme", optimizer_offload = "nvme", nvme_path = "/etc" };
        var (status, text) = await server.Post("/api/plan", new { model = "gpt2", hardware = "h200-1x", settings });
        var inside = await server.Post("/api/plan", new { model = "gpt2", hardware = "h200-1x", settings = settings with { nvme_path = Path.Combine(server.Nvme, "swap") } });

        Assert.Equal(400, status);
        Assert.Contains("outside the folders this server may use", ServerFixture.Error(text));
        Assert.Contains("--nvme-root", ServerFixture.Error(text));
        Assert.Equal(200, inside.Status);
    }

    [Fact]
    public async Task A_link_inside_the_root_that_leads_outside_is_refused()
    {
        string link = Path.Combine(server.Nvme, "escape");
        if (!Directory.Exists(link)) Directory.CreateSymbolicLink(link, "/tmp");
        var (status, text) = await server.Post("/api/check-nvme", new { path = Path.Combine(link, "x") });

        Assert.Equal(400, status);
        Assert.Contains("symbolic link", ServerFixture.Error(text));
        Assert.False(Directory.Exists("/tmp/x") && Directory.GetCreationTimeUtc("/tmp/x") > DateTime.UtcNow.AddMinutes(-1));
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_refused()
    {
        using var plain = new StringContent("{\"model\": \"gpt2\"}", Encoding.UTF8, "text/plain");
        using var notJson = new StringContent("{model: gpt2", Encoding.UTF8, "application/json");

        using var asText = await server.Http.PostAsync("/api/plan", plain);
        using var broken = await server.Http.PostAsync("/api/plan", notJson);

        Assert.Equal(415, (int)asText.StatusCode);
        Assert.Equal(400, (int)broken.StatusCode);
        Assert.Contains("not valid JSON", ServerFixture.Error(await broken.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused()
    {
        string huge = "{\"model\": \"gpt2\", \"pad\": \"" + new string('x', (int)ServeOptions.DefaultMaxBodyBytes) + "\"}";
        // Expect: 100-continue lets the server answer before the body is sent; without it the server's answer and its
        // closing the connection could race the client's upload (a broken pipe instead of the 413, seen once in CI).
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/plan") { Content = new StringContent(huge, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        using var response = await server.Http.SendAsync(request);

        Assert.Equal(413, (int)response.StatusCode);
        Assert.Contains("too large", ServerFixture.Error(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task A_request_for_another_host_name_is_refused()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/models");
        request.Headers.Host = "attacker.example";
        using var response = await server.Http.SendAsync(request);

        Assert.Equal(400, (int)response.StatusCode);
    }

    [Fact]
    public async Task The_page_is_served_offline_with_a_policy_that_forbids_other_origins()
    {
        using var response = await server.Http.GetAsync("/");
        string html = await response.Content.ReadAsStringAsync();

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Contains("default-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.DoesNotContain("http", html.Replace("http-equiv", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase);
        foreach (string file in new[] { "app.js", "charts.js", "fields.js", "dom.js", "runs.js", "app.css" })
            Assert.Equal(200, (int)(await server.Http.GetAsync(file)).StatusCode);
        Assert.Equal(404, (int)(await server.Http.GetAsync("/appsettings.json")).StatusCode);
    }

    [Fact]
    public async Task Runs_are_listed_opened_and_reported()
    {
        var list = await server.Get("/api/runs");
        var run = await server.Get($"/api/runs/{ServerFixture.RunId}");
        var report = await server.Get($"/api/runs/{ServerFixture.RunId}/report");

        Assert.Contains($"\"id\": \"{ServerFixture.RunId}\"", list.Text);
        Assert.Equal(200, run.Status);
        Assert.Contains("\"quantity\": \"step time\"", run.Text);
        // Memory per tier per step, for the live view's chart.
        var last = System.Text.Json.JsonDocument.Parse(run.Text).RootElement.GetProperty("steps")[3];
        Assert.Equal((5L << 30) + 3, last.GetProperty("peak_device_bytes").GetInt64());
        Assert.Equal(1L << 30, last.GetProperty("pinned_bytes").GetInt64());
        Assert.Equal((2L << 30) + 3, last.GetProperty("nvme_swap_bytes").GetInt64());
        Assert.Equal(200, report.Status);
        Assert.Contains("<svg", report.Text);
    }

    [Theory]
    [InlineData("../etc", 400)]
    [InlineData("a b", 400)]
    [InlineData(".hidden", 400)]
    [InlineData("no-such-run", 404)]
    public async Task A_run_id_outside_the_runs_folder_is_refused(string id, int expected)
    {
        var (status, _) = await server.Get($"/api/runs/{Uri.EscapeDataString(id)}");

        Assert.Equal(expected, status);
    }

    [Fact]
    public async Task The_live_view_streams_the_steps_already_written()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/runs/{ServerFixture.RunId}/live");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        while (events.Count < 4 && await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(4, events.Count);
        Assert.Contains("\"step\":3", events[3].Replace(" ", "", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tune_progress_streams_events_and_ends_with_the_document()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/tune")
        {
            Content = new StringContent("{\"model\": \"gpt2\", \"hardware\": \"rtx4090-64gb-pcie4\", \"settings\": {\"seq_len\": 512}, \"budget\": 120}", Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await server.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("event: result\ndata: {", text);
        Assert.Contains("data:   \"best\": {", text);
    }
}
