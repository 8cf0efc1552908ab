using AiOs.Planner.Engine.Collectives;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The test assembly's entry point, run as a rank child process by the cross-process collectives tests
/// (<c>dotnet AiOs.Planner.Engine.Tests.dll collectives-rank MODE</c>), and on a GPU machine without the SDK as
/// <c>collectives-launch nccl 2</c>; the test runner never calls it.
/// </summary>
public static class CollectivesTestHost
{
    public const string Verb = "collectives-rank";

    /// <summary>Exit code of a rank that saw a collective fail.</summary>
    public const int CollectiveFailed = 4;

    /// <summary>Exit code of the rank that the "die" mode kills on purpose.</summary>
    public const int DiedOnPurpose = 3;

    /// <summary>Starts <c>WORLD</c> ranks of this program in MODE and reports how they ended: the one command for a GPU machine without the .NET SDK.</summary>
    public const string LaunchVerb = "collectives-launch";

    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == LaunchVerb && int.TryParse(args[2], out int world))
        {
            var result = RankLauncher.Run(RankLaunchRequest.ForCurrentProcess([Verb, args[1]], world) with { Output = (r, line) => Console.WriteLine($"[rank {r}] {line}") });
            Console.WriteLine(result.Describe());
            return result.ExitCode;
        }
        if (args.Length != 2 || args[0] != Verb)
        {
            Console.Error.WriteLine($"usage: {Verb} exchange|die|nccl (run by the collectives tests, with the launcher's variables)");
            return 2;
        }
        RankEnvironment rank = RankEnvironment.Current() ?? throw new InvalidOperationException("Not started as a rank.");
        if (args[1] == "nccl") return NcclRank.Run(rank);
        try
        {
            using var collectives = SharedMemoryCollectives.Join(rank.SharedMemory() with { Timeout = TimeSpan.FromSeconds(30), RegionBytes = 4096 });
            if (args[1] == "die" && rank.Rank == 1)
            {
                Console.Error.WriteLine("rank 1 exits on purpose");
                System.Environment.Exit(DiedOnPurpose); // no Dispose: a crash, as far as the others can tell
            }
            float[] result = CollectivesWorkload.Run(collectives);
            File.WriteAllBytes(Path.Combine(rank.Rendezvous, $"result-{rank.Rank}.bin"), CollectivesWorkload.Bytes(result));
            return 0;
        }
        catch (CollectiveException e)
        {
            Console.Error.WriteLine(e.Message);
            return CollectiveFailed;
        }
    }
}

/// <summary>The exchange both the child processes and the in-process reference run: data from a fixed seed per rank, then all-gather, reduce-scatter and all-reduce results concatenated.</summary>
internal static class CollectivesWorkload
{
    public const int CountPerRank = 1500; // more than one 4096-byte region: the chunked path runs

    public static float[] Data(int rank, int length)
    {
        var random = new Random(1000 + rank);
        // Magnitudes spread over six decades, so that the order of additions changes the rounding.
        return [.. Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 3))))];
    }

    public static float[] Run(ICollectives c)
    {
        int n = CountPerRank, w = c.WorldSize;
        float[] data = Data(c.Rank, n * w);
        float[] gathered = new float[n * w];
        c.AllGather(data.AsSpan(0, n), gathered);
        float[] scattered = new float[n];
        c.ReduceScatter(data, scattered, ReduceOperation.Mean);
        float[] reduced = (float[])data.Clone();
        c.AllReduce(reduced, ReduceOperation.Sum);
        return [.. gathered, .. scattered, .. reduced];
    }

    /// <summary>The same results computed serially: sums in rank order, as the collectives promise.</summary>
    public static float[] Reference(int rank, int world)
    {
        int n = CountPerRank;
        float[][] data = [.. Enumerable.Range(0, world).Select(r => Data(r, n * world))];
        float[] gathered = [.. Enumerable.Range(0, world).SelectMany(r => data[r].Take(n))];
        float[] reduced = new float[n * world];
        for (int i = 0; i < reduced.Length; i++)
        {
            float acc = data[0][i];
            for (int r = 1; r < world; r++) acc += data[r][i];
            reduced[i] = acc;
        }
        float[] scattered = [.. reduced.Skip(rank * n).Take(n).Select(v => v / world)];
        return [.. gathered, .. scattered, .. reduced];
    }

    public static byte[] Bytes(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
