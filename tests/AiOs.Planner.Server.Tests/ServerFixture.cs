using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AiOs.Planner.Cli;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using Spectre.Console.Testing;

namespace AiOs.Planner.Server.Tests;

/// <summary>
/// One server on 127.0.0.1 and a free port for a test class, with a runs folder holding one small run and an NVMe root,
/// both in a fresh temporary folder; and the CLI run in-process, to compare documents with.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public string Root { get; } = Directory.CreateTempSubdirectory("aios-serve-").FullName;
    public string Runs => Path.Combine(Root, "runs");
    public string Nvme => Path.Combine(Root, "nvme");
    public const string RunId = "gpt2-run";
    public PlannerServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Nvme);
        WriteRun(Path.Combine(Runs, RunId));
        Server = await PlannerServer.StartAsync(new ServeOptions { Port = 0, RunsFolder = Runs, NvmeRoots = [Nvme] });
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromMinutes(5) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>POSTs <paramref name="body"/> as JSON; returns the status and the body text.</summary>
    public async Task<(int Status, string Text)> Post(string path, object body)
    {
        using var content = new StringContent(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync(path, content);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<(int Status, string Text)> Get(string path)
    {
        using var response = await Http.GetAsync(path);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The "error" of an error answer.</summary>
    public static string Error(string text) => JsonDocument.Parse(text).RootElement.GetProperty("error").GetString()!;

    /// <summary>What one in-process CLI run wrote: exit code, stdout (JSON) and stderr.</summary>
    public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

    public static CliResult Cli(params string[] args)
    {
        var console = new TestConsole().Width(4096);
        var errors = new TestConsole().Width(4096);
        var stdout = new StringWriter();
        int code = Program.Run(args, console, stdout, errors);
        return new CliResult(code, stdout.ToString(), errors.Output);
    }

    /// <summary>Writes <paramref name="settings"/> (a JSON object) as a settings file, exactly as the request carries it, and returns its path.</summary>
    public string SettingsFile(object settings)
    {
        string path = Path.Combine(Root, $"settings-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(settings));
        return path;
    }

    /// <summary>A run folder in the engine's format: a real gpt2 prediction on the RTX 4090 profile and four measured steps 10% slower.</summary>
    private static void WriteRun(string dir)
    {
        Directory.CreateDirectory(dir);
        var model = ModelCatalog.Default.Load("gpt2");
        var hardware = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");
        var settings = SettingsRules.Resolve(new TrainingSettings { OptimizerOffload = OffloadTier.Cpu, MicroBatch = 2 }, false);
        var plan = TrainingPlanner.Plan(model, hardware, settings, new PlanOptions { KeepTimeline = true });
        var step = plan.Step!;
        AtomicFile.WriteAllText(Path.Combine(dir, "prediction.json"), DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
        Timeline.Write(Path.Combine(dir, "predicted-timeline.jsonl"), step, hardware.HasGpu);
        File.WriteAllText(Path.Combine(dir, "settings.json"), JsonSerializer.Serialize(new { model, settings }, DescriptionJson.Options));
        var metrics = Enumerable.Range(0, 4).Select(s =>
        {
            double stretch = s == 0 ? 1.5 : 1.1;
            return JsonSerializer.Serialize(new
            {
                step = s, loss = 5.5 - 0.1 * s, tokens = 2048, wall_ms = step.Time.Milliseconds * stretch,
                forward_ms = step.Phases.Forward.Milliseconds * stretch, backward_ms = step.Phases.Backward.Milliseconds * stretch,
                optimizer_ms = step.Phases.Optimizer.Milliseconds * stretch, io_stall_ms = 1.0, tokens_per_second = 2048 / (step.Time.Seconds * stretch),
                nvme_read_g_bps = 0.0, nvme_write_g_bps = 0.0, peak_resident_bytes = 3L << 30,
                peak_device_bytes = (5L << 30) + s, pinned_bytes = 1L << 30, nvme_swap_bytes = (2L << 30) + s,
            });
        });
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), metrics);
    }
}
