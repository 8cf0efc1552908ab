using System.Net;
using AiOs.Planner.Server.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.HostFiltering;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AiOs.Planner.Server;

/// <summary>
/// The <c>aios serve</c> web server: one page (embedded, no CDN) and a JSON API whose documents are those of the CLI's
/// <c>--json</c>. Kestrel on <see cref="ServeOptions.Host"/> (127.0.0.1 unless told otherwise).
/// </summary>
public sealed class PlannerServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private PlannerServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>Where the page is, e.g. http://127.0.0.1:5180/ (the real port when <see cref="ServeOptions.Port"/> was 0).</summary>
    public Uri Address { get; }

    /// <summary>
    /// Raises the thread pool's minimum so requests are served while a tune runs: the tuner's parallel loops hold pool threads
    /// for its whole search, and at the default minimum (the core count: two on the CI VM) a tune's progress events, every
    /// 250 ms, and a <c>DELETE /api/tune</c> waited for the pool to inject threads; with other CPU-bound requests beside it, a
    /// 35 s tune once streamed no progress at all (CI, 2026-12-07).
    /// </summary>
    private static void KeepSpareThreads()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, Environment.ProcessorCount + SpareThreads), io);
    }

    /// <summary>Pool threads kept beyond the core count for serving beside CPU-bound work.</summary>
    private const int SpareThreads = 8;

    /// <summary>Starts listening; returns once the port is bound.</summary>
    /// <exception cref="IOException">The address or port cannot be bound (in use, not this machine's).</exception>
    public static async Task<PlannerServer> StartAsync(ServeOptions options, CancellationToken cancel = default)
    {
        KeepSpareThreads();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.AddServerHeader = false;
            if (options.Host is "localhost") k.ListenLocalhost(options.Port);
            else k.Listen(ParseAddress(options.Host), options.Port);
        });
        // On loopback, only requests addressed to this machine by name: a page elsewhere cannot reach the server by
        // pointing its own host name at 127.0.0.1 (DNS rebinding).
        if (options.IsLoopback)
            builder.Services.Configure<HostFilteringOptions>(o => o.AllowedHosts = ["localhost", "127.0.0.1", "[::1]"]);
        builder.Services.AddHostFiltering(_ => { });
        var app = builder.Build();
        app.UseHostFiltering();
        ApiEndpoints.Map(app, options);
        PageEndpoints.Map(app);
        await app.StartAsync(cancel);
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new PlannerServer(app, new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/"));
    }

    /// <summary>Runs until <paramref name="stop"/> fires (Ctrl+C) or the server stops.</summary>
    public Task WaitAsync(CancellationToken stop) => _app.WaitForShutdownAsync(stop);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static IPAddress ParseAddress(string host) =>
        IPAddress.TryParse(host.Trim('[', ']'), out var address) ? address
            : throw new ArgumentException($"--host {host} is not an IP address; give one of this machine's addresses (127.0.0.1, the default, or 0.0.0.0 for every interface).");
}
