namespace AiOs.Planner.IO.Tests;

/// <summary>A fresh folder under /tmp (a real disk here, so O_DIRECT applies), deleted afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine("/tmp", "aios-io-tests-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

internal static class Pattern
{
    /// <summary>Fills a span with bytes that differ per position and seed, so a misplaced block shows.</summary>
    public static void Fill(Span<byte> span, int seed)
    {
        var rng = new Random(seed);
        rng.NextBytes(span);
    }
}
