using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using AiOs.Planner.Calibration;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.IO;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios calibrate</c>: measure this machine's drive, memory copy and CPU Adam, and write a profile.</summary>
public static class CalibrateCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var nvmePath = new Option<string?>("--nvme-path") { Description = "Folder on the drive to measure (a temporary test file goes here and is deleted); required unless --host-only" };
        var hostOnly = new Option<bool>("--host-only") { Description = "Re-measure only memory copy, CPU Adam (fp32, bf16 and 8-bit state) and its cost per call, and the gradient-sum pass (no drive) into --out, keeping every other figure of it (or of --base)" };
        var output = new Option<string?>("--out") { Description = "Profile file to write (e.g. profiles/my-machine.json); an existing file is updated, keeping its GPU section" };
        var baseProfile = new Option<string?>("--base") { Description = "Profile (bundled name or path) to start from; its GPU and link sections are kept" };
        var quick = new Option<bool>("--quick") { Description = "Smaller test file and shorter samples (about 30 s)" };
        var full = new Option<bool>("--full") { Description = "Larger test file and longer samples (several minutes)" };
        var testSize = SizeOption.Create("--test-size", "Test-file size (default: 1G quick, 8G default, 16G full)", default);
        var json = new Option<bool>("--json") { Description = "Print one JSON document (profile, warnings) on stdout" };
        var command = new Command("calibrate", "Measure the drive (read/write sweep over block size, queue depth, threads), memory copy and CPU Adam; write a hardware profile.")
        {
            nvmePath, hostOnly, output, baseProfile, quick, full, testSize, json,
        };
        command.SetAction(async (r, ct) =>
        {
            if (r.GetValue(quick) && r.GetValue(full))
            {
                io.Errors.MarkupLine("[red]error:[/] choose --quick or --full, not both.");
                return ExitCodes.Usage;
            }
            string? outPath = r.GetValue(output);
            string? baseName = r.GetValue(baseProfile) ?? (outPath is not null && File.Exists(outPath) ? outPath : null);
            var mode = r.GetValue(quick) ? CalibrationMode.Quick : r.GetValue(full) ? CalibrationMode.Full : CalibrationMode.Default;
            if (r.GetValue(hostOnly)) return HostOnly(io, outPath, baseName, mode, r.GetValue(json), ct);
            if (string.IsNullOrWhiteSpace(r.GetValue(nvmePath)))
            {
                io.Errors.MarkupLine("[red]error:[/] --nvme-path is required: a folder on the drive to measure (or --host-only to re-measure only memory copy and CPU Adam into an existing profile).");
                return ExitCodes.Usage;
            }
            var options = new CalibrationOptions
            {
                NvmePath = r.GetValue(nvmePath)!,
                Mode = mode,
                Base = baseName is null ? null : ProfileCatalog.Default.Load(baseName),
                Name = outPath is null ? null : Path.GetFileNameWithoutExtension(outPath),
                Date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
                ToolVersion = typeof(CalibrateCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "unknown",
                TestFileSize = r.GetValue(testSize) is { Value: > 0 } size ? size : null,
            };
            // SIGINT and SIGTERM cancel ct (System.CommandLine); a closed terminal (SIGHUP) would otherwise end the
            // process at once, so it cancels too. The test file removes its own name on all three (TestFile).
            using var hangup = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var onHangup = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                hangup.Cancel();
            });
            try
            {
                var result = await CalibrationProgressBar.RunAsync(io.Console, options, r.GetValue(json), hangup.Token).ConfigureAwait(false);
                // A signal after the last probe looked still means "interrupted": no profile (CI, INT as the run finished).
                hangup.Token.ThrowIfCancellationRequested();
                if (outPath is not null && !TryWrite(io, outPath, result)) return ExitCodes.Usage;
                if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(result, outPath)));
                else CalibrationTables.Render(io, result, outPath);
                return ExitCodes.Ok;
            }
            catch (CalibrationException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            catch (DirectIoException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message} No profile was written; the test file was removed.");
                return ExitCodes.Infeasible;
            }
            catch (OperationCanceledException)
            {
                io.Errors.MarkupLine("[yellow]interrupted[/]: the test file was removed and no profile was written.");
                return ExitCodes.Interrupted;
            }
        });
        return command;
    }

    /// <summary>
    /// <c>--host-only</c>: memory copy, both CPU Adam figures and the update's cost per call measured and written into the profile at
    /// <paramref name="outPath"/> (started from <paramref name="baseName"/>), every other figure kept.
    /// </summary>
    private static int HostOnly(CliIo io, string? outPath, string? baseName, CalibrationMode mode, bool json, CancellationToken ct)
    {
        if (outPath is null || baseName is null)
        {
            io.Errors.MarkupLine("[red]error:[/] --host-only updates a profile: give --out FILE (an existing profile), or --base PROFILE with --out FILE.");
            return ExitCodes.Usage;
        }
        try
        {
            var host = Calibrator.MeasureHostOnly(mode, null, ct);
            ct.ThrowIfCancellationRequested();
            var profile = ProfileBuilder.WithHost(ProfileCatalog.Default.Load(baseName), host, DateTime.UtcNow.ToString("yyyy-MM-dd")) with { Name = Path.GetFileNameWithoutExtension(outPath) };
            ProfileWriter.WriteFile(outPath, profile);
            if (json)
                io.Stdout.Write(DeepSpeedConfig.ToJson(new JsonObject { ["written"] = outPath, ["profile"] = JsonNode.Parse(ProfileWriter.ToJson(profile)) }));
            else
                io.Console.MarkupLineInterpolated($"memory copy {profile.Cpu.MemoryBandwidthGbps.Value:0.0} GB/s; CPU Adam {profile.Cpu.AdamParamsPerS.Value / 1e9:0.00} G params/s (fp32 gradients), {(profile.Cpu.AdamBf16ParamsPerS?.Value ?? 0) / 1e9:0.00} G params/s (the engine's bf16 path), {profile.Cpu.AdamFp16Rate.Value / 1e9:0.00} G params/s (its fp16 path), {profile.Cpu.Adam8Rate.Value / 1e9:0.00} G params/s (8-bit state, {Planner.Optim.BlockwiseAdam.KernelName} kernel); the better of 1 and {host.Threads} threads; {profile.Cpu.OptimizerCallOverhead * 1e6:0.0} µs fixed per update call; gradient sums {(profile.Cpu.HostAddGbps?.Value ?? 0):0.0} GB/s of traffic; wrote {outPath} (drives, GPU and links kept).");
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            io.Errors.MarkupLine("[yellow]interrupted[/]: no profile was written.");
            return ExitCodes.Interrupted;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            io.Errors.MarkupLineInterpolated($"[red]error:[/] cannot write {outPath}: {e.Message}");
            return ExitCodes.Usage;
        }
    }

    /// <summary>Writes the profile; on failure says why and prints the profile so the measurements are not lost.</summary>
    private static bool TryWrite(CliIo io, string path, CalibrationResult result)
    {
        try
        {
            ProfileWriter.WriteFile(path, result.Profile);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            io.Errors.MarkupLineInterpolated($"[red]error:[/] cannot write {path}: {e.Message} The profile follows on stdout.");
            io.Stdout.Write(ProfileWriter.ToJson(result.Profile));
            return false;
        }
    }

    private static JsonObject Json(CalibrationResult result, string? outPath) => new()
    {
        ["written"] = outPath,
        ["elapsed_s"] = Math.Round(result.Elapsed.TotalSeconds, 1),
        ["test_file_bytes"] = result.Drive.TestFileSize.Value,
        ["warnings"] = new JsonArray(result.Warnings.Select(w => (JsonNode)JsonValue.Create(w)!).ToArray()),
        ["profile"] = JsonNode.Parse(ProfileWriter.ToJson(result.Profile)),
    };
}
