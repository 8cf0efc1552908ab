namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// A fresh, empty folder under the system's temporary folder (<see cref="Directory.CreateTempSubdirectory(string?)"/>),
/// deleted with everything in it on <see cref="Dispose"/>. Use it as a field of an <see cref="IDisposable"/> test class
/// (xUnit makes one instance per test) or as <c>using var tmp = new TempDir("aios-…-");</c> inside a test.
/// </summary>
/// <remarks>
/// The folder's name starts with the given prefix (then random characters), so a test may rely on what the prefix holds,
/// such as Spectre markup characters. Disposing twice, or after the test removed the folder itself, is fine.
/// </remarks>
internal sealed class TempDir : IDisposable
{
    /// <summary>Creates the folder now; its name starts with <paramref name="prefix"/> when one is given.</summary>
    public TempDir(string? prefix = null) => Path = Directory.CreateTempSubdirectory(prefix).FullName;

    /// <summary>The folder's full path.</summary>
    public string Path { get; }

    /// <summary>A path inside the folder (<c>Path.Combine(Path, parts…)</c>); nothing is created.</summary>
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Deletes the folder and everything in it; an already deleted folder is no error.</summary>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Gone already: the test removed it, or Dispose ran twice.
        }
    }

    public override string ToString() => Path;
}
