using System.Globalization;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace AiOs.Planner.Server.Tests;

/// <summary>
/// The page in a real browser (Debian's Chromium, headless, driven by Playwright): the flow of issue 17 end to end.
/// One browser and few steps, because the machine is small and shared. Screenshots go to bin/…/screenshots. The page's
/// Content-Security-Policy forbids eval, which Playwright's waits use, so the tests bypass it (the API tests check the header).
/// </summary>
public sealed class PlannerPageTests(ServerFixture server, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private static readonly string Shots = Path.Combine(AppContext.BaseDirectory, "screenshots");

    [ChromiumFact]
    public async Task Plan_change_tune_download_and_open_a_run()
    {
        Directory.CreateDirectory(Shots);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumFactAttribute.Executable, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1400, Height = 1000 }, AcceptDownloads = true, BypassCSP = true });
        // CI runs the other test projects beside this one on 2 cores: waits get room, assertions stay on what is drawn.
        page.SetDefaultTimeout(120_000);
        var errors = new List<string>();
        page.Console += (_, m) => { if (m.Type == "error") errors.Add(m.Text); };
        page.PageError += (_, e) => errors.Add(e);
        page.Response += (_, r) => { if (r.Status >= 400) errors.Add($"{r.Status} {r.Url}"); };

        // Given the page on gpt2-xl and the H200 profile (the defaults it picks).
        await page.GotoAsync(server.Server.Address.ToString());
        int seq = await PlanSeq(page, 0);
        Assert.Equal("gpt2-xl", await page.InputValueAsync("#model"));
        Assert.Equal("h200-1x", await page.InputValueAsync("#hardware"));
        Assert.Contains("Fits: gpt2-xl on h200-1x", await page.InnerTextAsync("#verdict"));
        Assert.Contains("DeepSpeed: train_micro_batch_size_per_gpu", await page.GetAttributeAsync("label:has(#f-micro_batch)", "title"));
        Assert.Contains("DeepSpeed: zero_optimization.offload_optimizer.device", await page.GetAttributeAsync("label:has(#f-optimizer_offload)", "title"));
        await page.WaitForSelectorAsync("#timeline-chart rect[fill]");
        Assert.True(await page.Locator("#timeline-chart rect[fill]").CountAsync() > 10, "the step's timeline has no operations drawn");
        long gpuBefore = await Used(page, "GPU");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "1-plan.png"), FullPage = true });

        // When the micro-batch grows, the GPU bar grows and the plan is redrawn.
        var redraws = new List<double>();
        foreach (string micro in new[] { "2", "4", "8", "16" })
        {
            await page.FillAsync("#f-micro_batch", micro);
            seq = await PlanSeq(page, seq);
            redraws.Add(await page.EvaluateAsync<double>("window.aiosLastRedrawMs"));
        }
        long gpuAfter = await Used(page, "GPU");
        Assert.True(gpuAfter > gpuBefore, $"GPU use {gpuAfter} after micro-batch 16 is not above {gpuBefore} at 1");
        output.WriteLine($"change → redraw (ms): {string.Join(", ", redraws.Select(r => r.ToString("0", CultureInfo.InvariantCulture)))}");

        // Offloading the optimizer without a ZeRO stage does not fit, and says why; a stage mends it and moves memory to the CPU.
        long cpuBefore = await Used(page, "CPU RAM (all)");
        await page.SelectOptionAsync("#f-optimizer_offload", "cpu");
        seq = await PlanSeq(page, seq);
        Assert.Contains("Does not fit", await page.InnerTextAsync("#verdict"));
        Assert.Contains("optimizer offload needs a ZeRO stage", await page.InnerTextAsync("#problems"));
        await page.SelectOptionAsync("#f-zero_stage", "zero2");
        seq = await PlanSeq(page, seq);
        Assert.Contains("Fits", await page.InnerTextAsync("#verdict"));
        Assert.True(await Used(page, "CPU RAM (all)") > cpuBefore, "offloading the optimizer did not grow the CPU bar");
        Assert.True(await Used(page, "GPU") < gpuAfter, "offloading the optimizer did not shrink the GPU bar");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "2-offload.png"), FullPage = true });

        // The downloaded ds_config.json is what `aios ds-config` prints for the downloaded settings file.
        string settingsPath = await Download(page, "#download-settings", "aios-settings.json");
        string dsPath = await Download(page, "#download-ds", "ds_config.json");
        var cli = ServerFixture.Cli("ds-config", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", settingsPath);
        Assert.Equal(0, cli.ExitCode);
        Assert.Equal(cli.Stdout, await File.ReadAllTextAsync(dsPath));
        Assert.Contains("\"train_micro_batch_size_per_gpu\": 16", cli.Stdout);

        // A tune runs to completion with progress, and its best settings can be taken back to the plan.
        await page.ClickAsync("#tabs button[data-tab=tune]");
        await page.FillAsync("#tune-budget", "300");
        await page.ClickAsync("#tune-start");
        await page.WaitForSelectorAsync("#tune-best", new() { Timeout = 180_000 });
        Assert.Equal("done", await page.InnerTextAsync("#tune-progress span"));
        Assert.True(await page.Locator("#pareto-chart circle").CountAsync() > 0, "no Pareto front drawn");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "3-tune.png"), FullPage = true });
        await page.ClickAsync("#tune-apply");
        seq = await PlanSeq(page, seq);
        Assert.Contains("Fits", await page.InnerTextAsync("#verdict"));

        // A run opens with its predicted-vs-measured rows and its step times.
        await page.ClickAsync("#tabs button[data-tab=runs]");
        await page.ClickAsync($"[data-run={ServerFixture.RunId}]");
        await page.WaitForSelectorAsync("#run-comparison");
        Assert.Contains("step time", (await page.InnerTextAsync("#run-comparison")).ToLowerInvariant());
        Assert.True(await page.Locator("#run-chart polyline").CountAsync() >= 2, "measured and predicted lines not drawn");
        // Memory per tier: the four measured tiers, and the predicted level of those the prediction has.
        foreach (string tier in new[] { "device peak", "pinned host", "host RSS peak", "NVMe swap" })
            Assert.Equal(1, await page.Locator($"#run-memory polyline[data-series='{tier}']").CountAsync());
        Assert.True(await page.Locator("#run-memory polyline[stroke-dasharray='6 4']").CountAsync() >= 1, "no predicted memory level drawn");
        // While the run trains, a step appended to metrics.jsonl joins the chart without a reload (the live view).
        string metrics = Path.Combine(server.Runs, ServerFixture.RunId, "metrics.jsonl");
        await File.AppendAllTextAsync(metrics, "{\"step\": 4, \"loss\": 5.0, \"tokens\": 2048, \"wall_ms\": 400.0, \"forward_ms\": 1, \"backward_ms\": 1, \"optimizer_ms\": 1, \"io_stall_ms\": 0, \"tokens_per_second\": 5120, \"nvme_read_g_bps\": 1.5, \"nvme_write_g_bps\": 0.5, \"peak_resident_bytes\": 3221225472, \"peak_device_bytes\": 6442450944, \"pinned_bytes\": 1073741824, \"nvme_swap_bytes\": 2147483648}\n");
        await page.WaitForFunctionAsync("document.querySelector('#run-chart polyline').getAttribute('points').trim().split(' ').length === 5", null, new() { Timeout = 30_000 });
        Assert.Equal(5, (await page.GetAttributeAsync("#run-io polyline", "points"))!.Trim().Split(' ').Length);
        Assert.Equal(5, (await page.GetAttributeAsync("#run-memory polyline[data-series='device peak']", "points"))!.Trim().Split(' ').Length);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "4-run.png"), FullPage = true });

        Assert.Empty(errors);
    }

    [ChromiumFact]
    public async Task Uploads_fixes_hardware_edits_whatif_and_a_cancelled_tune()
    {
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumFactAttribute.Executable, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { BypassCSP = true });
        page.SetDefaultTimeout(120_000);
        await page.GotoAsync(server.Server.Address.ToString());
        int seq = await PlanSeq(page, 0);

        // An uploaded config.json that is not a model is refused with the loader's message, naming the problem.
        await page.SetInputFilesAsync("#model-upload", new FilePayload { Name = "config.json", MimeType = "application/json", Buffer = "{\"model_type\": \"gpt2\", \"n_layer\": -3}"u8.ToArray() });
        seq = await PlanSeq(page, seq);
        string verdict = await page.InnerTextAsync("#verdict");
        Assert.Contains("uploaded-config", verdict);
        Assert.Equal("verdict error", await page.GetAttributeAsync("#verdict", "class"));

        // A plan that overflows the GPU offers its fixes as buttons; one click applies it and the plan fits.
        await page.SelectOptionAsync("#model", "gpt2-xl");
        seq = await PlanSeq(page, seq);
        await page.FillAsync("#f-micro_batch", "64");
        seq = await PlanSeq(page, seq);
        Assert.Contains("Does not fit", await page.InnerTextAsync("#verdict"));
        await page.ClickAsync("button.fix:has-text('--grad-checkpointing')");
        seq = await PlanSeq(page, seq);
        Assert.True(await page.IsCheckedAsync("#f-activation_checkpointing"));
        Assert.Contains("Fits", await page.InnerTextAsync("#verdict"));

        // "What if I buy…": less GPU memory in the edited profile is the GPU bar's new capacity.
        await page.ClickAsync("#whatif-buy summary");
        await page.FillAsync("#hw-gpu-mem", "80");
        seq = await PlanSeq(page, seq);
        Assert.Equal((80L << 30).ToString(CultureInfo.InvariantCulture), await page.GetAttributeAsync("#memory-chart g[data-tier='GPU']", "data-capacity"));
        Assert.Contains("h200-1x-what-if", await page.InnerTextAsync("#verdict"));

        // The what-if grid: one model on one machine, each cell a tune.
        await page.ClickAsync("#tabs button[data-tab=whatif]");
        await page.ClickAsync("#whatif-run");
        await page.WaitForSelectorAsync("#whatif-table", new() { Timeout = 120_000 });
        Assert.Matches(@"^[\d,]+ \(\w+\)$", await page.InnerTextAsync("#whatif-table tr:nth-child(2) td:nth-child(2)"));
        Assert.Equal(2, await page.Locator("#whatif-table tr").CountAsync());

        await page.ClickAsync("#tabs button[data-tab=tune]");
        // A search that cannot end before the click: gpt2's whole space is searched in well under a second on a fast
        // machine (the Cancel button was then disabled again before the click), llama-2-7b's takes seconds.
        await page.FillAsync("#tune-budget", "500000");
        await page.SelectOptionAsync("#model", "llama-2-7b");
        await page.ClickAsync("#tune-start");
        await page.WaitForSelectorAsync("#tune-progress span:has-text('searching')", new() { Timeout = 60_000 });
        await page.ClickAsync("#tune-cancel");
        await page.WaitForSelectorAsync("#tune-progress span:has-text('cancelled')");
        Assert.Equal(0, await page.Locator("#tune-best").CountAsync());
        // Cancel really stopped the search: the next tune is accepted at once (not 409) and runs to its answer.
        await page.SelectOptionAsync("#model", "gpt2");
        await page.FillAsync("#tune-budget", "300");
        await page.ClickAsync("#tune-start");
        await page.WaitForSelectorAsync("#tune-best", new() { Timeout = 180_000 });
        Assert.Equal("done", await page.InnerTextAsync("#tune-progress span"));
    }

    /// <summary>Waits for a plan drawn after <paramref name="after"/> and returns its number.</summary>
    private static async Task<int> PlanSeq(IPage page, int after)
    {
        await page.WaitForFunctionAsync($"Number(document.body.dataset.planSeq || 0) > {after}", null, new() { Timeout = 60_000 });
        return int.Parse(await page.EvaluateAsync<string>("document.body.dataset.planSeq"), CultureInfo.InvariantCulture);
    }

    /// <summary>The bytes the memory chart shows as used in a tier.</summary>
    private static async Task<long> Used(IPage page, string tier) =>
        long.Parse(await page.GetAttributeAsync($"#memory-chart g[data-tier='{tier}']", "data-used") ?? "0", CultureInfo.InvariantCulture);

    private async Task<string> Download(IPage page, string button, string name)
    {
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync(button));
        Assert.Equal(name, download.SuggestedFilename);
        string path = Path.Combine(server.Root, "download-" + name);
        await download.SaveAsAsync(path);
        return path;
    }
}
