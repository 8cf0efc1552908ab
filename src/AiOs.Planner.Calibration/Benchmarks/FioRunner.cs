using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Benchmarks;

/// <summary>Runs fio (libaio, direct=1) for one sequential direction and reads its JSON output.</summary>
public static class FioRunner
{
    /// <summary>True when an <c>fio</c> executable is on the PATH.</summary>
    public static bool IsAvailable() =>
        (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, "fio")));

    /// <summary>The fio arguments for one sequential pass over <paramref name="length"/> bytes of <paramref name="file"/> from <paramref name="offset"/>.</summary>
    public static IReadOnlyList<string> Arguments(string file, Bytes offset, Bytes length, Bytes block, int queueDepth, IoDirection direction) =>
    [
        "--name=aios-compare", $"--filename={file}", $"--offset={offset.Value}", $"--size={length.Value}", $"--bs={block.Value}",
        $"--iodepth={queueDepth}", "--ioengine=libaio", "--direct=1",
        $"--rw={(direction == IoDirection.Read ? "read" : "write")}", "--numjobs=1", "--output-format=json",
    ];

    /// <summary>The command line as a user would type it.</summary>
    public static string CommandLine(IReadOnlyList<string> arguments) => "fio " + string.Join(' ', arguments);

    /// <summary>Runs fio and returns its bandwidth for the direction.</summary>
    public static async Task<Bandwidth> RunAsync(IReadOnlyList<string> arguments, IoDirection direction, CancellationToken ct)
    {
        var info = new ProcessStartInfo("fio") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(info) ?? throw new InvalidOperationException("fio did not start.");
        try
        {
            var output = process.StandardOutput.ReadToEndAsync(ct);
            var error = process.StandardError.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
            if (process.ExitCode != 0) throw new InvalidOperationException($"fio exited with {process.ExitCode}: {await error.ConfigureAwait(false)}");
            return ParseBandwidth(await output.ConfigureAwait(false), direction);
        }
        catch (OperationCanceledException)
        {
            if (!process.HasExited) process.Kill();
            throw;
        }
    }

    /// <summary>Reads <c>jobs[0].read|write.bw_bytes</c> from fio's JSON output.</summary>
    public static Bandwidth ParseBandwidth(string json, IoDirection direction)
    {
        // fio may print notes before the JSON object.
        int start = json.IndexOf('{', StringComparison.Ordinal);
        if (start < 0) throw new FormatException("fio printed no JSON.");
        using var doc = JsonDocument.Parse(json[start..]);
        var job = doc.RootElement.GetProperty("jobs")[0];
        var side = job.GetProperty(direction == IoDirection.Read ? "read" : "write");
        return new Bandwidth(side.GetProperty("bw_bytes").GetDouble());
    }

    /// <summary>fio's version string, e.g. "fio-3.33".</summary>
    public static string Version()
    {
        try
        {
            var info = new ProcessStartInfo("fio", "--version") { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = System.Diagnostics.Process.Start(info);
            string v = p?.StandardOutput.ReadToEnd().Trim() ?? "";
            p?.WaitForExit();
            return v;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    internal static string Format(Bandwidth b) => b.GBps.ToString("0.000", CultureInfo.InvariantCulture);
}
