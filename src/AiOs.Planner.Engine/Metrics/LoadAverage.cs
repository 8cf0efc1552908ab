using System.Globalization;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// The 1-minute load average from <c>/proc/loadavg</c>: recorded at a run's start and end, so a summary can say that
/// other work shared the cores (null where the file does not exist or cannot be read).
/// </summary>
public static class LoadAverage
{
    /// <summary>The 1-minute load average now; null off Linux or when <c>/proc/loadavg</c> cannot be read.</summary>
    public static double? OneMinute()
    {
        const string path = "/proc/loadavg";
        try
        {
            return File.Exists(path) ? Parse(File.ReadAllText(path)) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The first field of a <c>/proc/loadavg</c> line ("0.52 0.58 0.59 1/345 12345"); null when it is not a number.</summary>
    public static double? Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string first = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        return double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out double load) && double.IsFinite(load) && load >= 0 ? load : null;
    }
}
