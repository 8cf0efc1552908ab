using AiOs.Planner.Engine.Collectives;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Runs one body per rank on its own thread, each with its own <see cref="SharedMemoryCollectives"/> on a fresh rendezvous folder.</summary>
internal static class CollectiveThreads
{
    /// <summary>Each rank's result, by rank; the first rank's exception (by rank) is rethrown after all threads end.</summary>
    public static T[] Run<T>(int world, Func<ICollectives, T> body, long regionBytes = 4096, TimeSpan? timeout = null)
    {
        string folder = NewFolder();
        try
        {
            var results = new T[world];
            var errors = new Exception?[world];
            Thread[] threads = [.. Enumerable.Range(0, world).Select(rank => new Thread(() =>
            {
                try
                {
                    using var c = SharedMemoryCollectives.Join(new SharedMemoryOptions(folder, rank, world) { RegionBytes = regionBytes, Timeout = timeout ?? TimeSpan.FromSeconds(30) });
                    results[rank] = body(c);
                }
                catch (Exception e)
                {
                    errors[rank] = e;
                }
            }))];
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
            if (errors.FirstOrDefault(e => e is not null) is { } error) throw error;
            return results;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Each rank's outcome: its exception, or null.</summary>
    public static Exception?[] Outcomes(int world, Action<int, ICollectives> body, TimeSpan timeout)
    {
        var errors = new Exception?[world];
        Run(world, c =>
        {
            try
            {
                body(c.Rank, c);
            }
            catch (CollectiveException e)
            {
                errors[c.Rank] = e;
            }
            return 0;
        }, timeout: timeout);
        return errors;
    }

    public static string NewFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "aios-collectives-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }
}
