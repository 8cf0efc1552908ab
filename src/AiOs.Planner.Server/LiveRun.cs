using System.Text;
using AiOs.Planner.Server.Api;
using Microsoft.AspNetCore.Http;

namespace AiOs.Planner.Server;

/// <summary>
/// <c>GET /api/runs/{id}/live</c>: each line of the run's metrics.jsonl as a server-sent <c>step</c> event, the lines
/// already there first, then each one the training run appends (checked twice a second), until the browser leaves.
/// </summary>
internal static class LiveRun
{
    public static async Task Stream(HttpContext context, RunFolders runs, string id)
    {
        string path;
        try
        {
            path = runs.MetricsFile(id);
        }
        catch (Exception e) when (ApiEndpoints.Failure(e) is { } failure)
        {
            await failure.ExecuteAsync(context);
            return;
        }
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        long offset = 0;
        var pending = new StringBuilder();
        try
        {
            while (!context.RequestAborted.IsCancellationRequested)
            {
                if (File.Exists(path))
                {
                    await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    if (file.Length < offset) offset = 0; // replaced by a new run: start over
                    file.Seek(offset, SeekOrigin.Begin);
                    using var reader = new StreamReader(file, Encoding.UTF8);
                    string more = await reader.ReadToEndAsync(context.RequestAborted);
                    offset = file.Length;
                    pending.Append(more);
                    // Only whole lines: the writer may be half-way through one.
                    string text = pending.ToString();
                    int end = text.LastIndexOf('\n');
                    if (end >= 0)
                    {
                        foreach (string line in text[..end].Split('\n', StringSplitOptions.RemoveEmptyEntries))
                            await response.WriteAsync($"event: step\ndata: {line.Trim()}\n\n", context.RequestAborted);
                        await response.Body.FlushAsync(context.RequestAborted);
                        pending.Clear().Append(text[(end + 1)..]);
                    }
                }
                await Task.Delay(500, context.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
    }
}
