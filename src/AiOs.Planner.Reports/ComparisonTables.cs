using System.Globalization;
using System.Text;
using AiOs.Planner.Records;
using AiOs.Planner.Units;

namespace AiOs.Planner.Reports;

/// <summary>HTML tables of Core's <see cref="RunComparison"/> per memory tier and per operation; they only render it.</summary>
internal static class ComparisonTables
{
    /// <summary>The tier table; empty without tiers.</summary>
    public static string Tiers(RunComparison c)
    {
        if (c.Tiers.Count == 0) return "";
        var t = new StringBuilder("<h3>Memory per tier</h3><table><tr><th>tier</th><th>predicted</th><th>measured</th><th>error</th><th>compared</th></tr>");
        foreach (var r in c.Tiers)
            t.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(r.Tier)}</td><td>{new Bytes(r.PredictedBytes)}</td><td>{(r.MeasuredBytes is { } m ? new Bytes(m).ToString() : "not measured")}</td><td>{Percent(r.Error)}</td><td>{E(r.PredictedAs + " vs " + r.MeasuredAs)}</td></tr>");
        return t.Append("</table>").ToString();
    }

    /// <summary>The operation table; empty without operations.</summary>
    public static string Operations(RunComparison c)
    {
        if (c.Operations.Count == 0) return "";
        var t = new StringBuilder("<h3>Per operation kind and resource (busy time per step)</h3><table><tr><th>operation</th><th>resource</th><th>predicted</th><th>measured</th><th>error</th><th>spans predicted / measured</th></tr>");
        foreach (var r in c.Operations)
            t.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(r.Operation)}</td><td>{E(r.Resource)}</td><td>{r.PredictedMs:0.###} ms</td><td>{(r.MeasuredMs is { } m ? m.ToString("0.###", CultureInfo.InvariantCulture) + " ms" : "–")}</td><td>{Percent(r.Error)}</td><td>{r.PredictedSpans} / {r.MeasuredSpans:0.#}</td></tr>");
        return t.Append("</table>").ToString();
    }

    /// <summary>An error as a signed percentage, or an en dash.</summary>
    public static string Percent(double? error) => error is { } e ? e.ToString("+0.0%;-0.0%", CultureInfo.InvariantCulture) : "–";

    private static string E(string text) => HtmlReport.E(text);
}
