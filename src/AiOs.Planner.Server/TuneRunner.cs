using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using AiOs.Planner.Server.Api;
using AiOs.Planner.Tuning;
using Microsoft.AspNetCore.Http;

namespace AiOs.Planner.Server;

/// <summary>
/// <c>POST /api/tune</c>: the <c>aios tune --json</c> document, or with <c>Accept: text/event-stream</c> progress
/// events every quarter second (candidates evaluated against the budget, best tokens/s so far), then the document.
/// <c>DELETE /api/tune</c> cancels the running tune and answers once it has stopped. One tune at a time: the search
/// takes both cores of a small machine.
/// </summary>
/// <remarks>
/// A tune stops between candidate batches when its request is aborted (the browser closed the stream) or on
/// <c>DELETE</c>. A new tune that finds a cancelled one still finishing its batch waits for it rather than being refused.
/// </remarks>
internal sealed class TuneRunner
{
    private readonly Lock _gate = new();
    /// <summary>The tune that runs now (started here, not yet stopped), else null.</summary>
    private Running? _current;

    /// <summary>One tune: its search, the source that cancels it, and its latest progress.</summary>
    private sealed class Running(CancellationTokenSource cancel)
    {
        public CancellationTokenSource Cancel { get; } = cancel;
        public Task<TuneResult> Search { get; set; } = Task.FromCanceled<TuneResult>(new CancellationToken(true));
        public TuneProgress? Progress;
    }

    public async Task Handle(HttpContext context, PlannerApi api)
    {
        var notes = new List<string>();
        TuneRequest request;
        try
        {
            request = SearchApi.TuneRequest(await ApiEndpoints.ReadBody(context.Request), api, notes);
        }
        catch (Exception e) when (ApiEndpoints.Failure(e) is { } failure)
        {
            await failure.ExecuteAsync(context);
            return;
        }
        var tune = await Start(request, context.RequestAborted);
        if (tune is null)
        {
            await ApiEndpoints.Error(StatusCodes.Status409Conflict, "A tune is already running on this server; wait for it, or cancel it with DELETE /api/tune.").ExecuteAsync(context);
            return;
        }
        try
        {
            await Answer(context, tune, request, notes);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The browser went away: the linked token stops the search at its next batch; nothing more to send.
        }
        catch (OperationCanceledException) when (tune.Cancel.IsCancellationRequested && !context.Response.HasStarted)
        {
            await ApiEndpoints.Error(StatusCodes.Status409Conflict, "The tune was cancelled (DELETE /api/tune) before it finished.").ExecuteAsync(context);
        }
    }

    /// <summary><c>DELETE /api/tune</c>: cancels the running tune and waits for it to stop; 404 when none runs.</summary>
    public async Task<IResult> Cancel()
    {
        Running? tune;
        lock (_gate) tune = _current;
        if (tune is null) return ApiEndpoints.Error(StatusCodes.Status404NotFound, "No tune is running on this server.");
        try { await tune.Cancel.CancelAsync(); }
        catch (ObjectDisposedException) { /* it ended meanwhile */ }
        await Stopped(tune);
        return Results.Text(new JsonObject { ["cancelled"] = true, ["evaluated"] = Volatile.Read(ref tune.Progress)?.Evaluated ?? 0 }.ToJsonString(), "application/json");
    }

    /// <summary>Starts the search, or null when another (not cancelled) tune runs. A cancelled one is waited for first.</summary>
    private async Task<Running?> Start(TuneRequest request, CancellationToken aborted)
    {
        while (true)
        {
            Running? previous;
            lock (_gate)
            {
                previous = _current;
                if (previous is null)
                {
                    var tune = new Running(CancellationTokenSource.CreateLinkedTokenSource(aborted));
                    var token = tune.Cancel.Token;
                    // The slot is freed before the task completes, so whoever awaits a cancelled tune can start the next at once.
                    tune.Search = Task.Run(() =>
                    {
                        try { return Tuner.Tune(request, p => Volatile.Write(ref tune.Progress, p), token); }
                        finally { Release(tune); }
                    }, token);
                    _current = tune;
                    // Also when the token was cancelled before the search began (then the lambda never runs).
                    _ = tune.Search.ContinueWith(_ =>
                    {
                        Release(tune);
                        tune.Cancel.Dispose();
                    }, TaskScheduler.Default);
                    return tune;
                }
            }
            if (!previous.Cancel.IsCancellationRequested) return null;
            await Stopped(previous);
        }
    }

    private void Release(Running tune)
    {
        lock (_gate)
            if (_current == tune) _current = null;
    }

    /// <summary>Waits until the search has ended and the runner has let it go, however it ended.</summary>
    private async Task Stopped(Running tune)
    {
        try { await tune.Search; } catch (Exception) { /* its own request reports how it ended */ }
        // Only a search cancelled before it began is released by the continuation; wait for that too.
        while (true)
        {
            lock (_gate)
                if (_current != tune) return;
            await Task.Yield();
        }
    }

    private static async Task Answer(HttpContext context, Running tune, TuneRequest request, List<string> notes)
    {
        bool stream = context.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.Ordinal) == true);
        if (!stream)
        {
            await Results.Text(SearchApi.TuneJson(await tune.Search.WaitAsync(context.RequestAborted)), "application/json").ExecuteAsync(context);
            return;
        }
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        long start = Stopwatch.GetTimestamp();
        foreach (string note in notes) await Event(response, "note", note);
        while (!tune.Search.IsCompleted)
        {
            await Task.WhenAny(tune.Search, Task.Delay(250, context.RequestAborted));
            context.RequestAborted.ThrowIfCancellationRequested();
            if (tune.Search.IsCompleted) break;
            var p = Volatile.Read(ref tune.Progress);
            await Event(response, "progress", new JsonObject
            {
                ["elapsed_s"] = double.Parse(ApiEndpoints.Seconds(start), CultureInfo.InvariantCulture),
                ["evaluated"] = p?.Evaluated ?? 0,
                ["budget"] = request.Budget,
                ["best_tokens_per_s"] = p?.BestTokensPerSecond ?? 0,
            }.ToJsonString());
        }
        if (tune.Search.IsCanceled)
        {
            await Event(response, "cancelled", "{}");
            return;
        }
        await Event(response, "result", SearchApi.TuneJson(await tune.Search));
    }

    /// <summary>One server-sent event; a multi-line payload is sent as several data lines, which the client joins with newlines.</summary>
    private static async Task Event(HttpResponse response, string name, string data)
    {
        var text = new System.Text.StringBuilder("event: ").Append(name).Append('\n');
        foreach (string line in data.Split('\n')) text.Append("data: ").Append(line).Append('\n');
        await response.WriteAsync(text.Append('\n').ToString(), response.HttpContext.RequestAborted);
        await response.Body.FlushAsync(response.HttpContext.RequestAborted);
    }
}
