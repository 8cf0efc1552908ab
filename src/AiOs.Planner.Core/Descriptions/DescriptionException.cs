namespace AiOs.Planner.Descriptions;

/// <summary>
/// A model, profile or settings file that cannot be used. The message names the file, the field
/// (as a JSON path) and, for malformed JSON, the line, and says how to fix it.
/// </summary>
public sealed class DescriptionException : Exception
{
    public DescriptionException(string message) : base(message) { }

    public DescriptionException(string message, Exception inner) : base(message, inner) { }

    public DescriptionException() { }

    /// <summary>The file at fault, when there is one.</summary>
    public string? File { get; init; }

    /// <summary>The JSON path of the field at fault (e.g. <c>$.hidden_size</c>), when known.</summary>
    public string? Field { get; init; }
}

/// <summary>Collects every problem found in one description so that a user fixes them in one pass.</summary>
public sealed class ValidationProblems
{
    private readonly List<string> _problems = [];

    public ValidationProblems(string source) => Source = source;

    /// <summary>Where the description came from (a file path or a bundled name).</summary>
    public string Source { get; }

    public IReadOnlyList<string> Items => _problems;

    public void Add(string field, string problem) => _problems.Add($"{field}: {problem}");

    /// <summary>A positive whole number with no upper bound; prefer the bounded overload (kept for RopeScaling.Check).</summary>
    public void Positive(string field, long value)
    {
        if (value <= 0) Add(field, $"must be a positive number (found {value})");
    }

    /// <summary>A finite positive number with no upper bound; prefer the bounded overload (kept for RopeScaling.Check).</summary>
    public void Positive(string field, double value)
    {
        if (!(value > 0) || double.IsInfinity(value)) Add(field, $"must be a positive number (found {value})");
    }

    /// <summary>
    /// A whole number in <c>[1, max]</c>. Every count has an upper bound: a description's numbers multiply into
    /// byte counts and simulated times held in 64-bit integers, and into per-layer work, so an absurd value must
    /// be refused here, with its range, rather than overflow or exhaust memory later.
    /// </summary>
    public void Positive(string field, long value, long max, string unit = "")
    {
        if (value < 1 || value > max) Add(field, $"must be a positive number, at most {max}{unit} (found {value}; range 1..{max})");
    }

    /// <summary>A whole number in <c>[min, max]</c>.</summary>
    public void InRange(string field, long value, long min, long max, string unit = "")
    {
        if (value < min || value > max) Add(field, $"must be between {min} and {max}{unit} (found {value}; range {min}..{max})");
    }

    /// <summary>A finite number in <c>(0, max]</c>; NaN and infinities are refused.</summary>
    public void Positive(string field, double value, double max, string unit = "")
    {
        if (!(value > 0 && value <= max)) Add(field, $"must be a positive number, at most {max:G}{unit} (found {value:G}; range (0, {max:G}])");
    }

    /// <summary>A finite number in <c>[0, max]</c>.</summary>
    public void NonNegative(string field, double value, double max, string unit = "")
    {
        if (!(value >= 0 && value <= max)) Add(field, $"must be zero or more, at most {max:G}{unit} (found {value:G}; range [0, {max:G}])");
    }

    /// <summary>A finite number in <c>[min, max]</c>.</summary>
    public void InRange(string field, double value, double min, double max, string unit = "")
    {
        if (!(value >= min && value <= max)) Add(field, $"must be between {min:G} and {max:G}{unit} (found {value:G}; range [{min:G}, {max:G}])");
    }

    /// <summary>Throws one <see cref="DescriptionException"/> listing every problem, if there are any.</summary>
    public void ThrowIfAny()
    {
        if (_problems.Count == 0) return;
        throw new DescriptionException(
            $"{Source} is not valid:{System.Environment.NewLine}  - " + string.Join(System.Environment.NewLine + "  - ", _problems))
        {
            File = Source,
            Field = _problems[0].Split(':')[0],
        };
    }
}
