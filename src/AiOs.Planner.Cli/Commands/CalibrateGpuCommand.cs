using System.CommandLine;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios calibrate-gpu</c>: measure the GPU (copies, matmul, memory) into a profile, keeping its drive and CPU sections.</summary>
public static class CalibrateGpuCommand
{
    public static Command Create(CliIo io)
    {
        var output = new Option<string>("--out", "-o") { Description = "Profile file to write (updated in place when it exists)", Required = true };
        var baseProfile = new Option<string?>("--base") { Description = "Profile to start from when --out does not exist yet (name or path)" };
        var device = new Option<int>("--device") { Description = "CUDA device index", DefaultValueFactory = _ => 0 };
        var command = new Command("calibrate-gpu", "Measure host↔GPU copies (pinned and pageable), matmul TFLOP/s for layer shapes and GPU memory; write them into a profile.")
            { output, baseProfile, device };
        command.SetAction(r =>
        {
            string path = r.GetValue(output)!;
            var profile = File.Exists(path) ? ProfileCatalog.LoadFile(path)
                : r.GetValue(baseProfile) is { } b ? ProfileCatalog.Default.Load(b)
                : throw new DescriptionException($"{path} does not exist; give --base PROFILE to start from (e.g. the profile `aios calibrate` wrote).");
            GpuMeasurement m;
            try
            {
                m = GpuProbe.Measure(r.GetValue(device));
            }
            catch (InvalidOperationException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            string date = DateTime.UtcNow.ToString("yyyy-MM-dd");
            var updated = GpuProbe.Apply(profile, m, date) with
            {
                Name = Path.GetFileNameWithoutExtension(path),
                Date = date,
            };
            DescriptionJson.WriteFileAtomic(path, updated.Validated(path));
            foreach (string s in m.Samples) io.Console.MarkupLineInterpolated($"{s}");
            io.Console.MarkupLineInterpolated($"{m.Name}: {m.TotalMemory}; wrote {path}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
