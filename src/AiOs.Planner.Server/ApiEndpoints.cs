using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Server.Api;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace AiOs.Planner.Server;

/// <summary>
/// The JSON API. Each POST takes one JSON object (<c>Content-Type: application/json</c>, so a page elsewhere cannot
/// post to it without the browser asking first); each answer is the CLI's <c>--json</c> document for the same inputs,
/// or <c>{"error": "…"}</c> with 400 and the CLI's message.
/// </summary>
internal static class ApiEndpoints
{
    public static void Map(WebApplication app, ServeOptions options)
    {
        var nvmeRoots = new PathRoots(options.NvmeRoots, "--nvme-root");
        var api = new PlannerApi(nvmeRoots);
        var runs = new RunFolders(options.RunsFolder);
        var tunes = new TuneRunner();

        app.MapGet("/api/models", () => Json(PlannerApi.Models));
        app.MapGet("/api/profiles", () => Json(PlannerApi.Profiles));
        app.MapGet("/api/profiles/{name}/file", (string name) => Json(() => PlannerApi.ProfileFile(name)));
        app.MapGet("/api/config", () => Json(() => DeepSpeedConfig.ToJson(new JsonObject
        {
            ["nvme_roots"] = new JsonArray(nvmeRoots.Roots.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
            ["default_nvme_path"] = nvmeRoots.Roots.Count > 0 ? DefaultOffloadFolder.Path(nvmeRoots.Roots[0]) : null,
            ["runs_folder"] = options.RunsFolder is null ? null : Path.GetFullPath(options.RunsFolder),
            ["defaults"] = System.Text.Json.JsonSerializer.SerializeToNode(new TrainingSettings(), DescriptionJson.Options),
            ["max_body_bytes"] = options.MaxBodyBytes,
        })));
        app.MapPost("/api/plan", (HttpRequest r) => Post(r, api.Plan));
        app.MapPost("/api/plan/timeline", (HttpRequest r) => Post(r, api.Timeline, "application/x-ndjson"));
        app.MapPost("/api/ds-config", (HttpRequest r) => Post(r, body => api.DsConfig(body, [])));
        app.MapPost("/api/settings-file", (HttpRequest r) => Post(r, body => PlannerApi.SettingsFile(body, api)));
        app.MapPost("/api/whatif", (HttpRequest r) => Post(r, body =>
        {
            var request = SearchApi.WhatIfRequest(body);
            if (WhatIf.Check(request) is { Count: > 0 } problems)
                throw new DescriptionException(string.Join(System.Environment.NewLine, problems.Select(p => "error: " + p)));
            return SearchApi.WhatIfJson(WhatIf.Run(request));
        }));
        app.MapPost("/api/check-nvme", (HttpRequest r) => Post(r, body => CheckNvmeApi.Check(body, api, nvmeRoots)));
        app.MapPost("/api/tune", (HttpContext c) => tunes.Handle(c, api));
        app.MapDelete("/api/tune", tunes.Cancel);
        app.MapGet("/api/runs", () => Json(runs.List));
        app.MapGet("/api/runs/{id}", (string id) => Json(() => runs.Run(id)));
        app.MapGet("/api/runs/{id}/report", (string id) => Json(() => runs.Report(id), "text/html; charset=utf-8"));
        app.MapGet("/api/runs/{id}/live", (HttpContext c, string id) => LiveRun.Stream(c, runs, id));
    }

    /// <summary>Reads the body as one JSON object, within the size limit; the first error becomes the answer.</summary>
    public static async Task<JsonObject> ReadBody(HttpRequest request)
    {
        if (!request.HasJsonContentType())
            throw new UnsupportedBodyException();
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        return ApiInputs.Body(await reader.ReadToEndAsync(request.HttpContext.RequestAborted));
    }

    private static async Task<IResult> Post(HttpRequest request, Func<JsonObject, string> answer, string contentType = "application/json")
    {
        try
        {
            var body = await ReadBody(request);
            return Json(() => answer(body), contentType);
        }
        catch (Exception e) when (Failure(e) is { } failure)
        {
            return failure;
        }
    }

    /// <summary>The answer to a request that failed on its input: 400 with the CLI's message, 404, 413 or 415.</summary>
    public static IResult? Failure(Exception e) => e switch
    {
        DescriptionException d => Error(StatusCodes.Status400BadRequest, d.Message),
        RunNotFoundException n => Error(StatusCodes.Status404NotFound, n.Message),
        UnsupportedBodyException => Error(StatusCodes.Status415UnsupportedMediaType, "Send the request body as JSON (Content-Type: application/json)."),
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => Error(StatusCodes.Status413PayloadTooLarge, "The request body is too large for this server (uploads are description files of a few KiB)."),
        _ => null,
    };

    public static IResult Error(int status, string message) =>
        Results.Text(DeepSpeedConfig.ToJson(new JsonObject { ["error"] = message }), "application/json", Encoding.UTF8, status);

    private static IResult Json(Func<string> answer, string contentType = "application/json")
    {
        try
        {
            return Results.Text(answer(), contentType, Encoding.UTF8);
        }
        catch (Exception e) when (Failure(e) is { } failure)
        {
            return failure;
        }
    }

    /// <summary>Seconds since <paramref name="start"/>, for progress events.</summary>
    public static string Seconds(long start) => Stopwatch.GetElapsedTime(start).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
}

/// <summary>A POST whose body is not JSON (HTTP 415).</summary>
internal sealed class UnsupportedBodyException : Exception;
