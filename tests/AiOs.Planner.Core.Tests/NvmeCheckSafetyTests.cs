using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public sealed class NvmeCheckSafetyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-nvmecheck-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_links_planted_at_the_old_predictable_probe_names_When_checked_Then_their_targets_are_not_overwritten()
    {
        string folder = Path.Combine(_root, "nvme");
        Directory.CreateDirectory(folder);
        string target = Path.Combine(_root, "victim.txt");
        File.WriteAllText(target, "precious");
        File.CreateSymbolicLink(Path.Combine(folder, $".aios-write-probe-{Environment.ProcessId}"), target);
        File.CreateSymbolicLink(Path.Combine(folder, $".aios-odirect-probe-{Environment.ProcessId}"), target);

        var result = NvmeCheck.Check(folder, []);

        Assert.True(result.Usable, string.Join("; ", result.Problems));
        Assert.Equal("precious", File.ReadAllText(target));
        Assert.True(NoFollowFs.IsLink(Path.Combine(folder, $".aios-write-probe-{Environment.ProcessId}")));
    }

    [Fact]
    public void Given_a_probe_When_checked_Then_no_scratch_file_is_left_behind()
    {
        var result = NvmeCheck.Check(_root, []);

        Assert.True(result.Usable, string.Join("; ", result.Problems));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_root));
    }

    [Fact]
    public void Given_an_offload_path_that_is_a_link_When_checked_Then_it_is_refused_naming_the_resolved_path_and_nothing_is_written_there()
    {
        string real = Path.Combine(_root, "real");
        Directory.CreateDirectory(real);
        string link = Path.Combine(_root, "link");
        File.CreateSymbolicLink(link, real);

        var viaLink = NvmeCheck.Check(link, []);
        var viaReal = NvmeCheck.Check(real, []);

        string problem = Assert.Single(viaLink.Problems);
        Assert.Contains("symbolic link", problem);
        Assert.Contains($"pass the resolved path {real}", problem);
        Assert.True(viaReal.Usable, string.Join("; ", viaReal.Problems));
    }

    [Fact]
    public void Given_a_path_below_a_linked_folder_When_checked_Then_the_link_in_the_middle_is_refused_too()
    {
        string real = Path.Combine(_root, "real");
        Directory.CreateDirectory(real);
        File.CreateSymbolicLink(Path.Combine(_root, "link"), real);

        var result = NvmeCheck.Check(Path.Combine(_root, "link", "swap"), []);

        Assert.False(result.Usable);
        Assert.False(Directory.Exists(Path.Combine(real, "swap")));
    }

    [Fact]
    public void Given_a_tmpfs_folder_When_a_run_checks_it_Then_it_fails_with_the_words_check_nvme_uses_whatever_the_swap_mode()
    {
        if (StorageInspector.FindMount("/dev/shm").FileSystem != "tmpfs") return;
        string folder = Path.Combine("/dev/shm", "aios-test-" + Guid.NewGuid().ToString("N"));
        try
        {
            var direct = NvmeCheck.ForRun(folder, directIo: true, Bytes.FromMiB(1));
            var buffered = NvmeCheck.ForRun(folder, directIo: false, Bytes.FromMiB(1));
            var cli = NvmeCheck.Check(folder, []);

            var e = Assert.Throws<NvmeCheckException>(direct.ThrowIfUnusable);
            Assert.Contains("lives in RAM", e.Message);
            Assert.Throws<NvmeCheckException>(buffered.ThrowIfUnusable);
            Assert.Equal(cli.Problems, direct.Problems);
        }
        finally
        {
            Directory.Delete(folder);
        }
    }

    [Fact]
    public void Given_a_run_needing_more_than_is_free_When_checked_for_the_run_Then_it_throws_naming_the_need()
    {
        var check = NvmeCheck.ForRun(_root, directIo: true, Bytes.FromGiB(1_000_000));

        var e = Assert.Throws<NvmeCheckException>(check.ThrowIfUnusable);

        Assert.Contains("swap files", e.Message);
        Assert.Contains("free but needs", e.Message);
    }

    [Fact]
    public void Given_stale_swap_data_in_the_folder_When_checked_Then_a_warning_names_aios_clean_and_the_leftover_is_listed()
    {
        LeftoverFixtures.SwapFolder(_root, "old", new ProcessIdentity(LeftoverFixtures.DeadPid(), 1, Environment.MachineName), "param-0");

        var result = NvmeCheck.ForRun(_root, directIo: false, Bytes.FromMiB(1));

        Assert.True(result.Usable);
        Assert.Contains(result.Warnings, w => w.Contains($"aios clean {_root}"));
        Assert.Equal("old", Assert.Single(result.Leftovers).RunId);
    }
}
