using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace AiOs.Planner.Server;

/// <summary>The page and its scripts, served from the assembly's embedded resources (works offline, no CDN).</summary>
internal static class PageEndpoints
{
    private static readonly Dictionary<string, string> Files = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["app.js"] = "text/javascript; charset=utf-8",
        ["charts.js"] = "text/javascript; charset=utf-8",
        ["fields.js"] = "text/javascript; charset=utf-8",
        ["dom.js"] = "text/javascript; charset=utf-8",
        ["runs.js"] = "text/javascript; charset=utf-8",
        ["app.css"] = "text/css; charset=utf-8",
    };

    /// <summary>Only the page's own scripts run, and nothing is fetched from elsewhere.</summary>
    private const string Policy = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-src 'self'; object-src 'none'; base-uri 'none'";

    public static void Map(WebApplication app)
    {
        app.MapGet("/", (HttpContext c) => Serve(c, "index.html"));
        app.MapGet("/{file}", (HttpContext c, string file) => Files.ContainsKey(file) ? Serve(c, file) : Results.NotFound());
    }

    private static IResult Serve(HttpContext context, string file)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("wwwroot/" + file);
        if (stream is null) return Results.NotFound();
        using var reader = new StreamReader(stream);
        context.Response.Headers.ContentSecurityPolicy = Policy;
        context.Response.Headers.XContentTypeOptions = "nosniff";
        return Results.Text(reader.ReadToEnd(), Files[file]);
    }
}
