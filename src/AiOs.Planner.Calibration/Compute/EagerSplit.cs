namespace AiOs.Planner.Calibration.Compute;

/// <summary>Whether a baseline row sets the constants (fit) or only judges them (test).</summary>
public enum EagerRole
{
    Fit,
    Test,
}

/// <summary>
/// Which baseline rows the constants are fitted on; every other row is a test row the fit never sees. By model (the
/// default: gpt2 and gpt2-xl fit, the middle sizes test, so the test is an interpolation in size the fit cannot memorise)
/// or every K-th usable row in file order.
/// </summary>
public sealed record EagerSplit
{
    /// <summary>The default fit models: the smallest and the largest of the GPT-2 family.</summary>
    public static readonly IReadOnlyList<string> DefaultFitModels = ["gpt2", "gpt2-xl"];

    /// <summary>Models whose rows are fitted; ignored when <see cref="FitEvery"/> is set.</summary>
    public IReadOnlyList<string> FitModels { get; init; } = DefaultFitModels;
    /// <summary>When set, rows 0, K, 2K… (usable rows, file order) are fitted and the rest tested.</summary>
    public int? FitEvery { get; init; }

    /// <summary>The role of the usable row at <paramref name="index"/> (0-based, file order) for <paramref name="model"/>.</summary>
    public EagerRole RoleOf(string model, int index) => FitEvery is { } k
        ? (index % k == 0 ? EagerRole.Fit : EagerRole.Test)
        : (FitModels.Contains(model, StringComparer.Ordinal) ? EagerRole.Fit : EagerRole.Test);

    /// <summary>The split as its flag, for messages.</summary>
    public string Describe() => FitEvery is { } k ? $"--fit-every {k}" : $"--fit-models {string.Join(',', FitModels)}";
}
