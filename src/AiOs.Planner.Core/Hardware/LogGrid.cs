using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Hardware;

/// <summary>
/// A full grid of measured layer shapes, width × tokens (<see cref="LayerMatmulRates"/>, <see cref="GraphWork"/>): read
/// bilinearly in log width and log tokens, held at the grid's edge outside it, and checked as one.
/// </summary>
internal static class LogGrid
{
    /// <summary>
    /// <paramref name="value"/> at (<paramref name="hidden"/>, <paramref name="tokens"/>) over <paramref name="points"/>, a full
    /// grid: bilinear in (log hidden, log tokens) between its points, the edge's value outside it.
    /// </summary>
    public static double At<T>(IReadOnlyList<T> points, Func<T, int> hiddenOf, Func<T, long> tokensOf, Func<T, double> value, int hidden, long tokens)
    {
        var hs = points.Select(hiddenOf).Distinct().Order().ToArray();
        var ts = points.Select(tokensOf).Distinct().Order().ToArray();
        var (h0, h1, wh) = Bracket(hs.Select(h => (double)h).ToArray(), Math.Max(1, hidden));
        var (t0, t1, wt) = Bracket(ts.Select(t => (double)t).ToArray(), Math.Max(1, tokens));
        double V(int hi, int ti) => value(points.First(p => hiddenOf(p) == hs[hi] && tokensOf(p) == ts[ti]));
        return (1 - wh) * ((1 - wt) * V(h0, t0) + wt * V(h0, t1)) + wh * ((1 - wt) * V(h1, t0) + wt * V(h1, t1));
    }

    /// <summary>
    /// Checks a grid's points at <paramref name="at"/>: each present, with a positive width and token count, then
    /// <paramref name="each"/>'s own values (given the point and its key), then the shapes (<see cref="ValidateShapes"/>).
    /// </summary>
    public static void ValidatePoints<T>(ValidationProblems p, string at, IReadOnlyList<T?> points, Func<T, int> hiddenOf, Func<T, long> tokensOf,
        Action<T, string> each) where T : class
    {
        for (int i = 0; i < points.Count; i++)
        {
            string k = $"{at}[{i}]";
            if (points[i] is not { } pt) { p.Add(k, "must not be null"); continue; }
            p.Positive(k + ".hidden", hiddenOf(pt), 1 << 20);
            p.Positive(k + ".tokens", tokensOf(pt), 1L << 32);
            each(pt, k);
        }
        ValidateShapes(p, at, points.OfType<T>().Select(x => (hiddenOf(x), tokensOf(x))).ToList());
    }

    /// <summary>Names a shape listed twice, or a grid that is not full (every width with the same token counts), at <paramref name="at"/>.</summary>
    public static void ValidateShapes(ValidationProblems p, string at, IReadOnlyList<(int Hidden, long Tokens)> shapes)
    {
        int hs = shapes.Select(x => x.Hidden).Distinct().Count(), ts = shapes.Select(x => x.Tokens).Distinct().Count();
        if (shapes.Distinct().Count() != shapes.Count)
            p.Add(at, "a (hidden, tokens) shape appears twice; keep one point per shape");
        else if (shapes.Count != hs * ts)
            p.Add(at, $"must be a full grid: {hs} hidden sizes × {ts} token counts need {hs * ts} points, found {shapes.Count}");
    }

    /// <summary>The indices of <paramref name="grid"/> (ascending) around <paramref name="x"/> and its weight toward the upper one, in log space; the edge's index, weight 0, outside the grid.</summary>
    private static (int Lower, int Upper, double Weight) Bracket(double[] grid, double x)
    {
        if (x <= grid[0]) return (0, 0, 0);
        if (x >= grid[^1]) return (grid.Length - 1, grid.Length - 1, 0);
        int i = 0;
        while (grid[i + 1] < x) i++;
        return (i, i + 1, (Math.Log(x) - Math.Log(grid[i])) / (Math.Log(grid[i + 1]) - Math.Log(grid[i])));
    }
}
