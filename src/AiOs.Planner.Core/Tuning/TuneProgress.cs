namespace AiOs.Planner.Tuning;

/// <summary>
/// How far a tune has got, reported between candidate batches: candidates evaluated so far (never decreasing), the
/// budget, and the best tokens per second seen (0 until a candidate fits).
/// </summary>
public sealed record TuneProgress(int Evaluated, int Budget, double BestTokensPerSecond);
