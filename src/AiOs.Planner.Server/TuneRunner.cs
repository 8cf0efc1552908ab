using System.Diagnostics;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Server.Api;
using AiOs.Planner.Tuning;
using Microsoft.AspNetCore.Http;

namespace AiOs.Planner.Server;

/// <summary>
/// <c>POST /api/tune</c>: the <c>aios tune --json</c> document, or with <c>Accept: text/event-stream</c> progress
/// events every quarter second, then the document. One tune at a time: the search takes both cores of a small machine.
/// </summary>
/// <remarks>
/// The tuner takes no cancellation token and reports no progress, so progress is the elapsed time against the budget,
/// and cancelling (closing the stream) stops the events and drops the answer while the search runs out its budget;
/// the next tune waits for it. A token and a progress callback on <see cref="TuneRequest"/> would make both exact.
/// </remarks>
internal sealed class TuneRunner
{
    /// <summary>1 while a tune runs (started here, finished or not), else 0.</summary>
    private int _running;

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
        if (Interlocked.CompareExchange(ref _running, 1, 0) != 0)
        {
            await ApiEndpoints.Error(StatusCodes.Status409Conflict, "A tune is already running on this server; wait for it (or for a cancelled one to run out its budget).").ExecuteAsync(context);
            return;
        }
        var tune = Task.Run(() => Tuner.Tune(request));
        _ = tune.ContinueWith(_ => Volatile.Write(ref _running, 0), TaskScheduler.Default);
        bool stream = context.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.Ordinal) == true);
        if (!stream)
        {
            await Results.Text(SearchApi.TuneJson(await tune.WaitAsync(context.RequestAborted)), "application/json").ExecuteAsync(context);
            return;
        }
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        long start = Stopwatch.GetTimestamp();
        try
        {
            foreach (string note in notes) await Event(response, "note", note);
            while (!tune.IsCompleted)
            {
                await Task.WhenAny(tune, Task.Delay(250, context.RequestAborted));
                context.RequestAborted.ThrowIfCancellationRequested();
                if (!tune.IsCompleted)
                    await Event(response, "progress", new JsonObject { ["elapsed_s"] = double.Parse(ApiEndpoints.Seconds(start), System.Globalization.CultureInfo.InvariantCulture), ["budget"] = request.Budget }.ToJsonString());
            }
            await Event(response, "result", SearchApi.TuneJson(await tune));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The browser cancelled: nothing more to send; the search finishes in the background (see remarks).
        }
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
