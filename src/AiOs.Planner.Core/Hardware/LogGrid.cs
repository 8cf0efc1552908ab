namespace AiOs.Planner.Hardware;

/// <summary>Interpolation on a measured grid of shapes (<see cref="LayerMatmulRates"/>, <see cref="GraphWorkRatios"/>): in log space, held at the edges.</summary>
internal static class LogGrid
{
    /// <summary>The indices of <paramref name="grid"/> (ascending) around <paramref name="x"/> and its weight toward the upper one, in log space; the edge's index, weight 0, outside the grid.</summary>
    public static (int Lower, int Upper, double Weight) Bracket(double[] grid, double x)
    {
        if (x <= grid[0]) return (0, 0, 0);
        if (x >= grid[^1]) return (grid.Length - 1, grid.Length - 1, 0);
        int i = 0;
        while (grid[i + 1] < x) i++;
        return (i, i + 1, (Math.Log(x) - Math.Log(grid[i])) / (Math.Log(grid[i + 1]) - Math.Log(grid[i])));
    }
}
