using System.Collections;
using AiOs.Planner.Engine.Collectives;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The rank launcher with real child processes: a trivial shell child, and this test assembly's own entry point as a collectives rank.</summary>
public class RankLauncherTests
{
    [Fact]
    public void Given_two_ranks_where_rank_1_fails_When_launched_Then_the_result_names_rank_1_its_code_and_error_and_rank_0_is_ended()
    {
        // Rank 0 would sleep for ten minutes: the test finishing at all shows the launcher ended it.
        var request = new RankLaunchRequest("/bin/sh", ["-c", "if [ \"$RANK\" = 1 ]; then echo \"boom from $RANK of $WORLD_SIZE\" >&2; exit 3; fi; exec sleep 600"], 2)
        {
            GracePeriod = TimeSpan.FromMilliseconds(200),
        };
        RankLaunchResult result = RankLauncher.Run(request);
        Assert.False(result.Succeeded);
        Assert.Equal(1, result.FailedRank);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("boom from 1 of 2", result.Error, StringComparison.Ordinal);
        Assert.NotEqual(0, result.ExitCodes[0]);
        Assert.Contains("rank 1 failed with exit code 3", result.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_three_ranks_that_succeed_When_launched_Then_each_saw_its_own_rank_local_rank_and_the_same_rendezvous()
    {
        var lines = new List<(int Rank, string Line)>();
        var request = new RankLaunchRequest("/bin/sh", ["-c", "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $AIOS_RENDEZVOUS\""], 3)
        {
            Output = (rank, line) => { lock (lines) lines.Add((rank, line)); },
        };
        RankLaunchResult result = RankLauncher.Run(request);
        Assert.True(result.Succeeded, result.Describe());
        Assert.Equal([0, 0, 0], result.ExitCodes);
        var fields = lines.OrderBy(l => l.Rank).Select(l => l.Line.Split(' ')).ToList();
        Assert.Equal(["0", "1", "2"], fields.Select(f => f[0]));
        Assert.Equal(["0", "1", "2"], fields.Select(f => f[1]));
        Assert.All(fields, f => Assert.Equal("3", f[2]));
        Assert.Single(fields.Select(f => f[3]).Distinct());
    }

    [Fact]
    public void Given_a_program_that_does_not_exist_When_launched_Then_the_error_names_the_rank_and_the_program()
    {
        var e = Assert.Throws<InvalidOperationException>(() => RankLauncher.Run(new RankLaunchRequest("/nonexistent/aios-rank", [], 2)));
        Assert.Contains("rank 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/aios-rank", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_two_processes_When_they_exchange_through_shared_memory_Then_each_has_the_serial_reference_bit_for_bit()
    {
        string folder = CollectiveThreads.NewFolder();
        RankLaunchResult result = RankLauncher.Run(TestHost("exchange", 2) with { Rendezvous = folder });
        Assert.True(result.Succeeded, result.Describe());
        for (int rank = 0; rank < 2; rank++)
        {
            byte[] written = File.ReadAllBytes(Path.Combine(folder, $"result-{rank}.bin"));
            Assert.Equal(CollectivesWorkload.Bytes(CollectivesWorkload.Reference(rank, 2)), written);
        }
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Given_a_rank_process_that_dies_When_the_other_waits_in_a_collective_Then_it_fails_on_its_own_naming_the_dead_rank()
    {
        var lines = new List<(int Rank, string Line)>();
        // A long grace period: rank 0 must notice the death itself (it exits with CollectiveFailed), not be killed.
        RankLaunchResult result = RankLauncher.Run(TestHost("die", 2) with
        {
            GracePeriod = TimeSpan.FromSeconds(25),
            Output = (rank, line) => { lock (lines) lines.Add((rank, line)); },
        });
        Assert.Equal(1, result.FailedRank);
        Assert.Equal(CollectivesTestHost.DiedOnPurpose, result.ExitCode);
        Assert.Equal(CollectivesTestHost.CollectiveFailed, result.ExitCodes[0]);
        string rank0 = string.Join("\n", lines.Where(l => l.Rank == 0).Select(l => l.Line));
        Assert.Contains("rank 1, whose process (pid", rank0, StringComparison.Ordinal);
        Assert.Contains("has exited", rank0, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_rank_variables_When_read_Then_a_malformed_one_is_named_and_none_means_not_a_rank()
    {
        Assert.Null(RankEnvironment.From(new Hashtable()));
        var parsed = RankEnvironment.From(new Hashtable { ["AIOS_RENDEZVOUS"] = "/r", ["RANK"] = "1", ["WORLD_SIZE"] = "2", ["LOCAL_RANK"] = "1" });
        Assert.Equal(new RankEnvironment(1, 2, 1, "/r"), parsed);
        var e = Assert.Throws<InvalidOperationException>(() => RankEnvironment.From(new Hashtable { ["AIOS_RENDEZVOUS"] = "/r", ["RANK"] = "x", ["WORLD_SIZE"] = "2", ["LOCAL_RANK"] = "0" }));
        Assert.Contains("RANK is 'x'", e.Message, StringComparison.Ordinal);
        var e2 = Assert.Throws<InvalidOperationException>(() => RankEnvironment.From(new Hashtable { ["AIOS_RENDEZVOUS"] = "/r", ["RANK"] = "2", ["WORLD_SIZE"] = "2", ["LOCAL_RANK"] = "0" }));
        Assert.Contains("RANK=2", e2.Message, StringComparison.Ordinal);
    }

    /// <summary>This test assembly run by the dotnet host as a collectives rank.</summary>
    private static RankLaunchRequest TestHost(string mode, int world)
    {
        string? host = System.Environment.ProcessPath;
        string dotnet = host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        return new RankLaunchRequest(dotnet, [typeof(CollectivesTestHost).Assembly.Location, CollectivesTestHost.Verb, mode], world);
    }
}
