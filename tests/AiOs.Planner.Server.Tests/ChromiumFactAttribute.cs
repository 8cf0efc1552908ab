namespace AiOs.Planner.Server.Tests;

/// <summary>A browser test: skipped, saying why, only where Debian's Chromium is not installed (CI installs it, so there it runs).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Executable = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Executable))
            Skip = $"{Executable} is absent: install Debian's Chromium (apt-get install -y chromium) to run the browser tests; .ci/run does.";
    }
}
