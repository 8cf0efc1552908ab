using System.Diagnostics;
using System.Text.Json.Nodes;
using AiOs.Planner.Storage;

namespace AiOs.Planner.Cli.Tests;

public sealed class CleanCommandTests : IDisposable
{
    private readonly TempDir _root = new("aios-clean-");

    public void Dispose() => _root.Dispose();

    private static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    /// <summary>A swap folder as a killed run leaves it: owner record, manifest, one swap file.</summary>
    private string StaleFolder(string runId, int pid)
    {
        string dir = _root.Combine("aios-" + runId);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, ".owner.json"), SwapFolders.ToJson(new SwapOwner
        {
            Pid = pid, StartTicks = 1, Host = Environment.MachineName, RunId = runId, CreatedUtc = "2026-12-01T00:00:00Z",
        }));
        File.WriteAllText(Path.Combine(dir, ".manifest"), "param-0\n");
        File.WriteAllBytes(Path.Combine(dir, "param-0"), new byte[4096]);
        return dir;
    }

    [Fact]
    public void Given_a_stale_swap_folder_When_check_nvme_lists_it_Then_it_shows_run_id_pid_and_stale_and_warns_to_clean()
    {
        int pid = DeadPid();
        StaleFolder("crashed-run", pid);

        var r = CliRunner.Run("check-nvme", _root.Path, "--json");

        var item = JsonNode.Parse(r.Stdout)!["leftovers"]!.AsArray().Single()!;
        Assert.Equal("crashed-run", item["run_id"]!.GetValue<string>());
        Assert.Equal(pid, item["pid"]!.GetValue<int>());
        Assert.Equal("stale", item["state"]!.GetValue<string>());
        Assert.True(item["bytes"]!.GetValue<long>() >= 4096);
        Assert.Contains(JsonNode.Parse(r.Stdout)!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("aios clean"));
        Assert.Contains("crashed-run", CliRunner.Run("check-nvme", _root.Path).Console);
    }

    [Fact]
    public void Given_stale_and_foreign_folders_When_cleaned_Then_a_dry_run_removes_nothing_and_a_real_run_removes_only_the_stale_one()
    {
        string stale = StaleFolder("old", DeadPid());
        string foreign = _root.Combine("aios-x");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "data"), "not ours");

        var dry = CliRunner.Run("clean", _root.Path, "--dry-run");
        Assert.Equal(ExitCodes.Ok, dry.ExitCode);
        Assert.True(Directory.Exists(stale));
        Assert.Contains("would be removed", dry.Console);

        var real = CliRunner.Run("clean", _root.Path, "--json");
        Assert.Equal(ExitCodes.Ok, real.ExitCode);
        Assert.False(Directory.Exists(stale));
        Assert.Equal("not ours", File.ReadAllText(Path.Combine(foreign, "data")));
        var items = JsonNode.Parse(real.Stdout)!["items"]!.AsArray();
        Assert.Equal("not_ours", items.Single(i => i!["path"]!.GetValue<string>() == foreign)!["state"]!.GetValue<string>());
    }

    [Fact]
    public void Given_an_offload_path_that_is_a_link_When_cleaned_Then_it_is_refused_and_the_target_is_untouched()
    {
        string stale = StaleFolder("old", DeadPid());
        string link = _root.Path + "-link";
        File.CreateSymbolicLink(link, _root.Path);
        try
        {
            var r = CliRunner.Run("clean", link);

            Assert.Equal(ExitCodes.Usage, r.ExitCode);
            Assert.Contains("symbolic link", r.Console);
            Assert.True(Directory.Exists(stale));
        }
        finally
        {
            File.Delete(link);
        }
    }

    [Fact]
    public void Given_an_unusable_folder_with_no_fallback_When_check_nvme_renders_Then_the_error_label_is_markup_not_literal_text()
    {
        string file = _root.Combine("a-file");
        File.WriteAllText(file, "");

        var r = CliRunner.Run("check-nvme", file, "--model", "gpt2", "--hardware", "h200-1x", "--no-fallback");

        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        Assert.Contains("error: NVMe offload folder unusable", r.Console);
        Assert.DoesNotContain("[red]", r.Console);
    }
}
