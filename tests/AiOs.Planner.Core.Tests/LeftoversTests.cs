using System.Diagnostics;
using AiOs.Planner.Storage;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Core.Tests;

/// <summary>Builds swap folders and scratch files as runs leave them, for the listing and cleaning tests.</summary>
internal static class LeftoverFixtures
{
    /// <summary>The pid of a process that has exited (so no process runs with it now).</summary>
    public static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    /// <summary>A swap folder with an owner record for <paramref name="owner"/>, a manifest and the listed files.</summary>
    public static string SwapFolder(string root, string runId, ProcessIdentity owner, params string[] files)
    {
        string dir = Path.Combine(root, SwapFolders.Prefix + runId);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, SwapFolders.OwnerName), SwapFolders.ToJson(new SwapOwner
        {
            Pid = owner.Pid, StartTicks = owner.StartTicks, Host = owner.Host, RunId = runId, CreatedUtc = "2026-12-01T00:00:00Z",
        }));
        File.WriteAllText(Path.Combine(dir, SwapFolders.LockName), "");
        File.WriteAllLines(Path.Combine(dir, SwapFolders.ManifestName), files);
        foreach (string f in files) File.WriteAllBytes(Path.Combine(dir, f), new byte[1000]);
        return dir;
    }
}

public sealed class LeftoversTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-leftovers-").FullName;
    private readonly string _outside = Directory.CreateTempSubdirectory("aios-outside-").FullName;

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_outside, recursive: true);
    }

    private static ProcessIdentity Dead() => new(LeftoverFixtures.DeadPid(), 1, Environment.MachineName);

    [Fact]
    public void Given_a_folder_left_by_a_killed_run_When_listed_and_cleaned_Then_it_is_stale_with_its_size_and_run_id_and_is_removed()
    {
        string dir = LeftoverFixtures.SwapFolder(_root, "crashed", Dead(), "param-0", "optim-0");

        Leftover item = Assert.Single(Leftovers.Find(_root));
        Assert.Equal(OwnerState.Dead, item.State);
        Assert.Equal("crashed", item.RunId);
        Assert.True(item.Size.Value >= 2000);
        Assert.NotNull(Leftovers.StaleWarning(_root));

        var dry = Assert.Single(Leftovers.Clean(_root, dryRun: true));
        Assert.False(dry.Removed);
        Assert.True(Directory.Exists(dir));

        var done = Assert.Single(Leftovers.Clean(_root, dryRun: false));
        Assert.True(done.Removed, done.Note);
        Assert.False(Directory.Exists(dir));
        Assert.Null(Leftovers.StaleWarning(_root));
    }

    [Fact]
    public void Given_a_folder_of_a_running_process_When_cleaned_Then_it_is_kept()
    {
        string dir = LeftoverFixtures.SwapFolder(_root, "live", ProcessIdentity.Current(), "param-0");

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.Equal(OwnerState.Alive, outcome.Item.State);
        Assert.False(outcome.Removed);
        Assert.True(File.Exists(Path.Combine(dir, "param-0")));
    }

    [Fact]
    public void Given_a_folder_whose_lock_is_held_When_its_owner_record_names_a_dead_pid_Then_the_lock_wins_and_it_is_kept()
    {
        string dir = LeftoverFixtures.SwapFolder(_root, "locked", Dead(), "param-0");
        Assert.Equal(0, NoFollowFs.TryOpenExisting(Path.Combine(dir, SwapFolders.LockName), out SafeFileHandle held));
        using (held)
        {
            Assert.True(NoFollowFs.TryLockExclusive(held));

            var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

            Assert.Equal(OwnerState.Alive, outcome.Item.State);
            Assert.True(Directory.Exists(dir));
        }
    }

    [Fact]
    public void Given_an_owner_record_whose_pid_was_reused_When_listed_Then_the_start_time_shows_it_is_stale()
    {
        var me = ProcessIdentity.Current();
        LeftoverFixtures.SwapFolder(_root, "reused", me with { StartTicks = me.StartTicks + 12345 }, "param-0");

        Assert.Equal(OwnerState.Dead, Assert.Single(Leftovers.Find(_root)).State);
    }

    [Fact]
    public void Given_a_folder_named_like_ours_without_an_owner_record_When_cleaned_Then_it_is_not_ours_and_left_alone()
    {
        string dir = Path.Combine(_root, "aios-x");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "precious.txt"), "user data");
        File.WriteAllText(Path.Combine(dir, ".lock"), "123\n"); // an older version's folder looks like this

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.Equal(OwnerState.NotOurs, outcome.Item.State);
        Assert.True(File.Exists(Path.Combine(dir, "precious.txt")));
    }

    [Fact]
    public void Given_an_owner_record_for_another_run_id_When_listed_Then_the_folder_is_not_ours()
    {
        string dir = LeftoverFixtures.SwapFolder(_root, "a", Dead(), "param-0");
        Directory.Move(dir, Path.Combine(_root, "aios-b"));

        Assert.Equal(OwnerState.NotOurs, Assert.Single(Leftovers.Find(_root)).State);
    }

    [Fact]
    public void Given_a_link_named_like_a_swap_folder_When_cleaned_Then_neither_the_link_nor_its_target_is_touched()
    {
        LeftoverFixtures.SwapFolder(_outside, "victim", Dead(), "param-0");
        string link = Path.Combine(_root, "aios-victim");
        File.CreateSymbolicLink(link, Path.Combine(_outside, "aios-victim"));

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.Equal(OwnerState.NotOurs, outcome.Item.State);
        Assert.True(NoFollowFs.IsLink(link));
        Assert.True(File.Exists(Path.Combine(_outside, "aios-victim", "param-0")));
    }

    [Fact]
    public void Given_a_stale_folder_whose_manifest_names_paths_outside_it_When_cleaned_Then_only_plain_names_inside_are_removed()
    {
        string victim = Path.Combine(_root, "victim.bin");
        File.WriteAllText(victim, "keep me");
        string dir = LeftoverFixtures.SwapFolder(_root, "evil", Dead(), "param-0");
        File.AppendAllLines(Path.Combine(dir, SwapFolders.ManifestName), ["../victim.bin", "/etc/hostname", ".."]);

        Leftovers.Clean(_root, dryRun: false);

        Assert.Equal("keep me", File.ReadAllText(victim));
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void Given_a_stale_folder_holding_a_file_the_run_did_not_create_When_cleaned_Then_that_file_and_the_folder_stay()
    {
        string dir = LeftoverFixtures.SwapFolder(_root, "mixed", Dead(), "param-0");
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "someone else's");

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.False(outcome.Removed);
        Assert.Contains("notes.txt", outcome.Note);
        Assert.True(File.Exists(Path.Combine(dir, "notes.txt")));
        Assert.False(File.Exists(Path.Combine(dir, "param-0")));
    }

    [Fact]
    public void Given_a_calibration_file_of_a_dead_process_and_one_of_this_process_When_cleaned_Then_only_the_dead_ones_go()
    {
        string mine = Path.Combine(_root, ScratchNames.New(ScratchKind.CalibrationFile));
        File.WriteAllBytes(mine, new byte[10]);
        string legacyDead = Path.Combine(_root, $".aios-calibrate-{LeftoverFixtures.DeadPid()}-{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(legacyDead, new byte[10]);
        string legacyProbe = Path.Combine(_root, $".aios-write-probe-{LeftoverFixtures.DeadPid()}");
        File.WriteAllBytes(legacyProbe, new byte[10]);

        var found = Leftovers.Find(_root);
        Assert.Equal(3, found.Count);
        Assert.Equal(OwnerState.Alive, found.Single(l => l.Path == mine).State);
        Leftovers.Clean(_root, dryRun: false);

        Assert.True(File.Exists(mine));
        Assert.False(File.Exists(legacyDead));
        Assert.False(File.Exists(legacyProbe));
    }

    [Fact]
    public void Given_a_link_with_a_stale_scratch_name_When_cleaned_Then_it_is_left_and_its_target_keeps_its_bytes()
    {
        string target = Path.Combine(_outside, "target.bin");
        File.WriteAllText(target, "precious");
        string link = Path.Combine(_root, $".aios-write-probe-{LeftoverFixtures.DeadPid()}");
        File.CreateSymbolicLink(link, target);

        var outcome = Assert.Single(Leftovers.Clean(_root, dryRun: false));

        Assert.Equal(OwnerState.NotOurs, outcome.Item.State);
        Assert.True(NoFollowFs.IsLink(link));
        Assert.Equal("precious", File.ReadAllText(target));
    }

    [Fact]
    public void Given_a_real_process_that_owns_a_folder_When_it_is_killed_Then_the_folder_turns_from_live_to_stale_and_is_cleaned()
    {
        using var sleeper = Process.Start(new ProcessStartInfo("/bin/sleep", "60") { UseShellExecute = false })!;
        var owner = new ProcessIdentity(sleeper.Id, ProcessIdentity.StartTicksOf(sleeper.Id)!.Value, Environment.MachineName);
        string dir = LeftoverFixtures.SwapFolder(_root, "killed", owner, "param-0");
        Assert.Equal(OwnerState.Alive, Assert.Single(Leftovers.Find(_root)).State);

        sleeper.Kill(); // SIGKILL: the process gets no chance to clean up
        sleeper.WaitForExit();

        Assert.Equal(OwnerState.Dead, Assert.Single(Leftovers.Find(_root)).State);
        Assert.True(Assert.Single(Leftovers.Clean(_root, dryRun: false)).Removed);
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void Given_two_new_scratch_names_When_made_Then_they_differ_and_parse_back_to_this_live_process()
    {
        string a = ScratchNames.New(ScratchKind.WriteProbe), b = ScratchNames.New(ScratchKind.WriteProbe);

        Assert.NotEqual(a, b);
        var parsed = ScratchNames.Parse(a);
        Assert.NotNull(parsed);
        Assert.Equal((ScratchKind.WriteProbe, Environment.ProcessId, OwnerState.Alive), parsed.Value);
    }
}
