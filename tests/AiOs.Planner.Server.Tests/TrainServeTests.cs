using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace AiOs.Planner.Server.Tests;

/// <summary><c>aios train --serve</c>: the server runs in the training process, on its runs folder, for as long as the run.</summary>
public sealed class TrainServeTests
{
    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact]
    public async Task The_api_lists_the_run_while_it_trains_and_stops_with_it()
    {
        string root = Directory.CreateTempSubdirectory("aios-train-serve-").FullName;
        int port = FreePort();
        var train = Task.Run(() => ServerFixture.Cli("train", "--model", "tiny-gpt", "--steps", "3000", "--seq-len", "32", "--micro-batch", "2",
            "--runs-dir", root, "--run-id", "live1", "--serve", port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };

        // The server lives only as long as the run, so any answer that lists the run came while it trained. Enough steps
        // that the first answer, after the server's and this client's start-up, comes in time: 400 took under 3 s once the
        // CPU device's AdamW ran in place (2026-12-05), before the server answered on the loaded CI VM; 3,000 take ~15 s there.
        string? listed = null;
        while (listed is null && !train.IsCompleted)
        {
            try
            {
                string text = await http.GetStringAsync("/api/runs");
                if (JsonDocument.Parse(text).RootElement.GetProperty("runs").EnumerateArray().Any(r => r.GetProperty("id").GetString() == "live1")) listed = text;
            }
            catch (HttpRequestException)
            {
                // Not listening yet (or already stopped, which ends the loop).
            }
            if (listed is null) await Task.Delay(100);
        }
        var result = await train;

        Assert.True(listed is not null, "the run was never listed while it trained: " + result.Stderr);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"127.0.0.1:{port}", result.Stderr);
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync("/api/runs"));
    }

    [Fact]
    public void A_port_in_use_is_refused_before_anything_trains()
    {
        string root = Directory.CreateTempSubdirectory("aios-train-serve-").FullName;
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var result = ServerFixture.Cli("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "32", "--runs-dir", root, "--run-id", "busy", "--serve", port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--serve", result.Stderr);
        Assert.Contains("another port", result.Stderr);
        Assert.False(Directory.Exists(Path.Combine(root, "busy")), "a run folder was started");
    }

    [Fact]
    public void Serve_without_a_port_takes_the_default_one()
    {
        string root = Directory.CreateTempSubdirectory("aios-train-serve-").FullName;

        // Either it serves on 5180 for the two steps, or 5180 is taken on this machine and the refusal names it: both say 5180.
        var result = ServerFixture.Cli("train", "--model", "tiny-gpt", "--serve", "--steps", "2", "--seq-len", "32", "--runs-dir", root, "--run-id", "default-port");

        Assert.Contains(ServeOptions.DefaultPort.ToString(System.Globalization.CultureInfo.InvariantCulture), result.Stderr);
        Assert.Equal(result.ExitCode == 0, result.Stderr.Contains($"127.0.0.1:{ServeOptions.DefaultPort}", StringComparison.Ordinal) && !result.Stderr.Contains("another port", StringComparison.Ordinal));
    }
}
