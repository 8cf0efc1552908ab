using System.Diagnostics;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Storage;

namespace AiOs.Planner.Engine.Tests;

public sealed class SwapDirectorySafetyTests : IDisposable
{
    private readonly string _base = Directory.CreateTempSubdirectory("aios-swapsafe-").FullName;
    private readonly string _root;

    public SwapDirectorySafetyTests()
    {
        _root = Path.Combine(_base, "offload");
        Directory.CreateDirectory(_root);
    }

    public void Dispose() => Directory.Delete(_base, recursive: true);

    private static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    [Theory]
    [InlineData("x/..")]
    [InlineData("x/../../victim")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("/abs")]
    [InlineData(".hidden")]
    public void Given_a_run_id_that_is_not_a_plain_name_When_acquired_Then_it_is_refused_and_nothing_around_is_touched(string runId)
    {
        string otherRun = Path.Combine(_root, "aios-other");
        Directory.CreateDirectory(otherRun);
        File.WriteAllText(Path.Combine(otherRun, "param-0"), "other run");
        string victim = Path.Combine(_base, "victim");
        Directory.CreateDirectory(victim);
        File.WriteAllText(Path.Combine(victim, "data"), "precious");

        var e = Assert.Throws<ArgumentException>(() => SwapDirectory.Acquire(_root, runId, keep: false).Dispose());

        Assert.Contains("not a plain name", e.Message);
        Assert.Equal("other run", File.ReadAllText(Path.Combine(otherRun, "param-0")));
        Assert.Equal("precious", File.ReadAllText(Path.Combine(victim, "data")));
    }

    [Fact]
    public void Given_a_file_the_run_did_not_create_in_its_folder_When_disposed_Then_only_the_runs_files_go_and_the_folder_stays()
    {
        string path;
        string? leftBehind;
        using (var dir = SwapDirectory.Acquire(_root, "r", keep: false))
        {
            path = dir.Path;
            File.WriteAllText(dir.FileFor("param-0"), "swap");
            File.WriteAllText(Path.Combine(dir.Path, "dropped-by-user.txt"), "mine");
            dir.Dispose();
            leftBehind = dir.LeftBehind;
        }

        Assert.False(File.Exists(Path.Combine(path, "param-0")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(path, "dropped-by-user.txt")));
        Assert.Contains("dropped-by-user.txt", leftBehind);
    }

    [Fact]
    public void Given_a_swap_folder_that_is_a_planted_link_When_acquired_Then_it_is_refused_and_the_target_keeps_its_files()
    {
        string elsewhere = Path.Combine(_base, "elsewhere");
        Directory.CreateDirectory(elsewhere);
        File.WriteAllText(Path.Combine(elsewhere, "param-0"), "precious");
        File.CreateSymbolicLink(Path.Combine(_root, "aios-r"), elsewhere);

        var e = Assert.Throws<IOException>(() => SwapDirectory.Acquire(_root, "r", keep: false).Dispose());

        Assert.Contains("symbolic link", e.Message);
        Assert.Equal("precious", File.ReadAllText(Path.Combine(elsewhere, "param-0")));
        Assert.Single(Directory.EnumerateFileSystemEntries(elsewhere));
    }

    [Fact]
    public void Given_an_nvme_path_that_is_a_link_When_acquired_Then_it_is_refused_unless_the_resolved_path_is_given()
    {
        string link = Path.Combine(_base, "nvme-link");
        File.CreateSymbolicLink(link, _root);

        var e = Assert.Throws<IOException>(() => SwapDirectory.Acquire(link, "r", keep: false).Dispose());
        using var ok = SwapDirectory.Acquire(_root, "r", keep: false);

        Assert.Contains($"pass the resolved path {_root}", e.Message);
        Assert.StartsWith(_root, ok.Path);
    }

    [Fact]
    public void Given_an_existing_folder_without_an_owner_record_When_acquired_Then_it_is_refused_and_left_as_it_was()
    {
        string existing = Path.Combine(_root, "aios-r");
        Directory.CreateDirectory(existing);
        File.WriteAllText(Path.Combine(existing, "results.csv"), "someone's");

        var e = Assert.Throws<IOException>(() => SwapDirectory.Acquire(_root, "r", keep: false).Dispose());

        Assert.Contains("no aios owner record", e.Message);
        Assert.Equal("someone's", File.ReadAllText(Path.Combine(existing, "results.csv")));
    }

    [Fact]
    public void Given_a_stale_folder_of_a_dead_run_with_the_same_id_When_acquired_Then_it_is_reclaimed_fresh()
    {
        string path;
        using (var kept = SwapDirectory.Acquire(_root, "r", keep: true))
        {
            path = kept.Path;
            File.WriteAllText(kept.FileFor("param-0"), "old swap");
        }
        string ownerFile = Path.Combine(path, SwapFolders.OwnerName);
        File.WriteAllText(ownerFile, File.ReadAllText(ownerFile).Replace($"\"pid\": {Environment.ProcessId}", $"\"pid\": {DeadPid()}", StringComparison.Ordinal));

        using var fresh = SwapDirectory.Acquire(_root, "r", keep: false);

        Assert.False(File.Exists(Path.Combine(path, "param-0")));
        Assert.Equal(OwnerState.Alive, SwapFolders.StateOf(fresh.Path, out _));
    }

    [Fact]
    public void Given_a_key_whose_path_was_planted_as_a_link_When_asked_for_Then_it_is_refused_and_disposing_leaves_the_target()
    {
        string target = Path.Combine(_base, "target.bin");
        File.WriteAllText(target, "precious");
        var dir = SwapDirectory.Acquire(_root, "r", keep: false);
        File.CreateSymbolicLink(Path.Combine(dir.Path, "param-0"), target);

        var e = Assert.Throws<IOException>(() => dir.FileFor("param-0"));
        dir.Dispose();

        Assert.Contains("symbolic link", e.Message);
        Assert.Equal("precious", File.ReadAllText(target));
    }

    [Fact]
    public void Given_a_swap_folder_in_use_When_listed_by_check_nvme_and_cleaned_Then_it_is_live_and_kept()
    {
        using var dir = SwapDirectory.Acquire(_root, "busy", keep: false);
        File.WriteAllText(dir.FileFor("param-0"), "swap");

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.Equal(OwnerState.Alive, outcome.Item.State);
        Assert.Equal("busy", outcome.Item.RunId);
        Assert.True(File.Exists(Path.Combine(dir.Path, "param-0")));
    }

    [Fact]
    public void Given_a_run_folder_When_made_Then_only_its_owner_can_enter_it()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = SwapDirectory.Acquire(_root, "r", keep: false);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir.Path));
    }
}
