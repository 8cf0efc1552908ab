using System.CommandLine;
using AiOs.Planner.Server;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios serve</c>: the planning page and its JSON API on this machine.</summary>
public static class ServeCommand
{
    public static Command Create(CliIo io)
    {
        var port = new Option<int>("--port") { Description = $"TCP port (default {ServeOptions.DefaultPort}; 0 picks a free one)", DefaultValueFactory = _ => ServeOptions.DefaultPort };
        var host = new Option<string>("--host") { Description = $"Address to listen on (default {ServeOptions.DefaultHost}, this machine only; another address lets anyone who reaches it use the server)", DefaultValueFactory = _ => ServeOptions.DefaultHost };
        var runs = new Option<string?>("--runs") { Description = "The runs folder `aios train` writes (runs/<id>): the runs tab reads it (default: ./runs when it exists)" };
        var nvmeRoots = new Option<string[]>("--nvme-root") { Description = "A folder NVMe offload paths from the page may lie in, and check-nvme may probe (repeatable; default: the current folder)", AllowMultipleArgumentsPerToken = false };
        var command = new Command("serve", "Serve the planning page and its JSON API (the documents the commands print as JSON) on 127.0.0.1.") { port, host, runs, nvmeRoots };
        command.SetAction(r =>
        {
            int p = r.GetValue(port);
            if (p is < 0 or > 65535)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] --port {p} is not a TCP port; give 1..65535 (or 0 for a free one).");
                return ExitCodes.Usage;
            }
            string? runsFolder = r.GetValue(runs) ?? (Directory.Exists("runs") ? Path.GetFullPath("runs") : null);
            if (runsFolder is not null && !Directory.Exists(runsFolder))
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] --runs {runsFolder} does not exist; give the folder `aios train` writes its runs into.");
                return ExitCodes.Usage;
            }
            string[] roots = r.GetValue(nvmeRoots) is { Length: > 0 } given ? given : [System.Environment.CurrentDirectory];
            var options = new ServeOptions { Host = r.GetValue(host)!, Port = p, RunsFolder = runsFolder, NvmeRoots = roots };
            if (!options.IsLoopback)
                io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] listening on {options.Host}, not 127.0.0.1: anyone who can reach this machine can use the page, read the runs in {runsFolder ?? "(none)"} and probe folders inside {string.Join(", ", roots)}. There is no login.");
            return Serve(io, options);
        });
        return command;
    }

    private static int Serve(CliIo io, ServeOptions options)
    {
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            PlannerServer server;
            try
            {
                server = PlannerServer.StartAsync(options, stop.Token).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is IOException or ArgumentException or System.Net.Sockets.SocketException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] cannot listen on {options.Host}:{options.Port}: {e.Message} Give another --port (or --host).");
                return ExitCodes.Failure;
            }
            io.Console.MarkupLineInterpolated($"Serving the planning page on [bold]{server.Address}[/] (runs: {options.RunsFolder ?? "none"}; NVMe folders inside: {string.Join(", ", options.NvmeRoots)}). Ctrl+C stops.");
            server.WaitAsync(stop.Token).GetAwaiter().GetResult();
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return ExitCodes.Ok;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
