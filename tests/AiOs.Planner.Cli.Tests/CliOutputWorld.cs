using System.Diagnostics;
using System.Text.Json;
using AiOs.Planner.Calibration;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Storage;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// Inputs whose names and paths hold Spectre markup characters (<c>x[1]</c>): a model, two profiles, an offload folder with
/// a stale swap folder, a run history; built once and shared by the output tests.
/// </summary>
public sealed class CliOutputWorld : IDisposable
{
    private readonly TempDir _root = new("aios-out-[x]-");

    /// <summary>Root folder; its own name holds brackets too.</summary>
    public string Root => _root.Path;

    /// <summary>gpt2 named <c>x[1]</c>.</summary>
    public string Model => Path.Combine(Root, "x[1].json");

    /// <summary>tiny-gpt named <c>t[1]</c>, for training.</summary>
    public string TinyModel => Path.Combine(Root, "t[1].json");

    /// <summary>rtx4090-64gb-pcie4 named <c>hw[1]</c>.</summary>
    public string Gpu => Path.Combine(Root, "hw[1].json");

    /// <summary>ci-2core-24gb named <c>cpu[1]</c>.</summary>
    public string Cpu => Path.Combine(Root, "cpu[1].json");

    /// <summary>An offload folder holding a stale swap folder of a dead process.</summary>
    public string Nvme => Path.Combine(Root, "nvme[1]");

    /// <summary>Run folders for <c>aios learn</c>.</summary>
    public string History => Path.Combine(Root, "history[1]");

    /// <summary>A fresh path under <see cref="Root"/> (not created).</summary>
    public string Fresh(string name) => Path.Combine(Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    public CliOutputWorld()
    {
        DescriptionJson.WriteFileAtomic(Model, ModelCatalog.Default.Load("gpt2") with { Name = "x[1]" });
        DescriptionJson.WriteFileAtomic(TinyModel, ModelCatalog.Default.Load("tiny-gpt") with { Name = "t[1]" });
        ProfileWriter.WriteFile(Gpu, ProfileCatalog.Default.Load("rtx4090-64gb-pcie4") with { Name = "hw[1]" });
        ProfileWriter.WriteFile(Cpu, ProfileCatalog.Default.Load("ci-2core-24gb") with { Name = "cpu[1]" });
        StaleSwapFolder();
        WriteHistory();
    }

    public void Dispose() => _root.Dispose();

    private void StaleSwapFolder()
    {
        int pid;
        using (var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!)
        {
            p.WaitForExit();
            pid = p.Id;
        }
        string dir = Path.Combine(Nvme, "aios-dead-run");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, ".owner.json"), SwapFolders.ToJson(new SwapOwner
        {
            Pid = pid, StartTicks = 1, Host = Environment.MachineName, RunId = "dead-run", CreatedUtc = "2026-12-01T00:00:00Z",
        }));
        File.WriteAllText(Path.Combine(dir, ".manifest"), "param-0\n");
        File.WriteAllBytes(Path.Combine(dir, "param-0"), new byte[4096]);
    }

    /// <summary>Run folders as <c>aios train</c> leaves them, measured at 2× the prediction.</summary>
    private void WriteHistory()
    {
        var model = ModelCatalog.Default.Load("tiny-gpt");
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb");
        foreach (int seq in new[] { 32, 64 })
            foreach (int mb in new[] { 1, 2, 4 })
            {
                string dir = Path.Combine(History, $"s{seq}-b{mb}");
                var step = RunPrediction.Write(dir, model, profile, new TrainingSettings { SeqLen = seq, MicroBatch = mb }).Step!;
                File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), Enumerable.Range(1, 3).Select(i => JsonSerializer.Serialize(new
                {
                    step = i, forward_ms = step.Phases.Forward.Milliseconds * 2, backward_ms = step.Phases.Backward.Milliseconds * 2,
                    optimizer_ms = step.Phases.Optimizer.Milliseconds * 2, wall_ms = 1.0,
                })));
            }
    }
}
