using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The persistent workers CpuAdam and the engine's chunked passes split their work over (issue 13): every chunk runs exactly
/// once whoever runs it, so the update's bits do not depend on the thread count, on back-to-back calls, on two callers at
/// once or on a chunk that runs a pass of its own.
/// </summary>
public class CpuWorkersTests
{
    private static readonly AdamHyperParameters Hp = new() { LearningRate = 1e-2f, WeightDecay = 0.1f };

    [Theory]
    [InlineData(2, 1)]
    [InlineData(3, 2)]
    [InlineData(5, 97)]
    public void Given_a_set_of_workers_When_a_pass_runs_Then_every_chunk_runs_exactly_once(int threads, int chunks)
    {
        var workers = CpuWorkers.Shared(threads);
        for (int call = 0; call < 50; call++)
        {
            var runs = new int[chunks];
            workers.For(chunks, c => Interlocked.Increment(ref runs[c]));
            Assert.All(runs, r => Assert.Equal(1, r));
        }
    }

    [Fact]
    public void Given_one_thread_and_a_chunk_that_throws_When_a_pass_runs_Then_the_other_chunks_still_run_before_its_exception()
    {
        var runs = new int[10];
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.Shared(1).For(10, c =>
        {
            runs[c]++;
            if (c == 3) throw new InvalidOperationException("chunk 3");
        }));
        Assert.Equal("chunk 3", e.Message);
        Assert.All(runs, r => Assert.Equal(1, r));
    }

    [Fact]
    public void Given_a_chunk_that_throws_When_a_pass_runs_Then_the_caller_gets_its_own_exception_after_the_other_chunks_ran()
    {
        var runs = new int[40];
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.Shared(3).For(40, c =>
        {
            Interlocked.Increment(ref runs[c]);
            if (c == 17) throw new InvalidOperationException("chunk 17");
        }));
        Assert.Equal("chunk 17", e.Message);
        Assert.All(runs, r => Assert.Equal(1, r));
    }

    [Fact]
    public async Task Given_chunks_that_run_passes_of_their_own_When_the_outer_pass_runs_Then_every_inner_chunk_runs_once_and_it_returns()
    {
        // A chunk of a pass may itself run a chunked pass (the engine's Chunked.For inside a CPU job): on the same set and
        // another, from the caller and from workers at once. A deadlock would never return: a minute is far beyond the
        // milliseconds these passes take, so the wait only tells a hang from a finish.
        var workers = CpuWorkers.Shared(3);
        var runs = new int[20, 12, 8];
        var passes = Task.Run(() =>
        {
            for (int call = 0; call < 20; call++)
                workers.For(12, outer => (outer % 2 == 0 ? workers : CpuWorkers.Shared(2)).For(8, inner => Interlocked.Increment(ref runs[call, outer, inner])));
        });
        Assert.True(await Task.WhenAny(passes, Task.Delay(TimeSpan.FromMinutes(1))) == passes, "Nested passes did not finish: a deadlock.");
        await passes;
        Assert.All(runs.Cast<int>(), r => Assert.Equal(1, r));
    }

    [Fact]
    public void Given_two_callers_at_once_When_each_runs_passes_Then_both_finish_every_chunk()
    {
        var workers = CpuWorkers.Shared(3);
        long[] totals = new long[2];
        Parallel.For(0, 2, who =>
        {
            for (int call = 0; call < 200; call++)
                workers.For(16, c => Interlocked.Add(ref totals[who], c + 1));
        });
        // Each pass adds 1 + 2 + … + 16 = 136.
        Assert.Equal([200 * 136L, 200 * 136L], totals);
    }

    [Fact]
    public void Given_passes_published_while_the_workers_are_busy_When_those_workers_come_free_Then_they_help_every_pass_with_work_left()
    {
        // Three callers at once, as the overlapped schedule has (a sub-group's CPU Adam, a norm pass, a copy): the workers are
        // all in pass Z when X (long) and then Y (short) are published. Once Z's chunks are gone they must help X too, not
        // only the pass published last, or X's caller runs the rest of it alone.
        var workers = CpuWorkers.Shared(4);
        var xThreadsAfterZ = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        int zStarted = 0, zDone = 0, xStarted = 0;
        var z = new Thread(() =>
        {
            workers.For(60, _ => { Interlocked.Increment(ref zStarted); Thread.Sleep(2); });
            Volatile.Write(ref zDone, 1);
        });
        var y = new Thread(() =>
        {
            while (Volatile.Read(ref xStarted) == 0) Thread.Sleep(1);
            workers.For(2, _ => Thread.Sleep(1));
        });
        z.Start();
        while (Volatile.Read(ref zStarted) < 4) Thread.Sleep(1);
        y.Start();
        workers.For(300, _ =>
        {
            Interlocked.Increment(ref xStarted);
            if (Volatile.Read(ref zDone) == 1) xThreadsAfterZ[Environment.CurrentManagedThreadId] = true;
            Thread.Sleep(2);
        });
        z.Join();
        y.Join();
        Assert.True(xThreadsAfterZ.Count > 1, $"after Z, {xThreadsAfterZ.Count} thread(s) ran X's chunks: the freed workers did not help it");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(16)]
    public void Given_any_thread_count_When_cpu_adam_steps_sub_groups_in_turn_Then_the_bits_match_one_thread(int threads)
    {
        // Sizes around the 64 K chunk: one chunk (inline), a chunk and a bit, several with a ragged end.
        int[] sizes = [65_536, 65_537, 1_000_003];
        foreach (int n in sizes)
        {
            var (p1, m1, v1, h1) = Stepped(n, 1);
            var (p, m, v, h) = Stepped(n, threads);
            Assert.Equal(p1, p);
            Assert.Equal(m1, m);
            Assert.Equal(v1, v);
            Assert.Equal(h1, h);
        }
    }

    /// <summary>Three updates of a seeded state on bf16 gradients with the bf16 copy, as the engine steps a sub-group in RAM.</summary>
    private static (float[] P, float[] M, float[] V, ushort[] H) Stepped(int n, int threads)
    {
        var rng = new Random(n);
        float[] p = new float[n], m = new float[n], v = new float[n];
        ushort[] g = new ushort[n], h = new ushort[n];
        for (int i = 0; i < n; i++) p[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int step = 1; step <= 3; step++)
        {
            for (int i = 0; i < n; i++) g[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5)) >> 16);
            CpuAdam.StepBf16Gradients(p, g, m, v, h, step, Hp, threads);
        }
        return (p, m, v, h);
    }

    [Fact]
    public void Given_the_update_threads_set_for_every_pass_When_a_pass_names_no_count_Then_it_runs_on_that_set_until_the_scope_ends()
    {
        int before = CpuWorkers.DefaultThreads;
        using (CpuWorkers.UseForEveryPass(1))
        {
            Assert.Equal(1, CpuWorkers.ForCores().Threads);
            int parts = 0;
            GradientSums.EvenParts(64 * GradientSums.MinPart, (_, _) => Interlocked.Increment(ref parts));
            Assert.Equal(1, parts);
            using (CpuWorkers.UseForEveryPass(3)) Assert.Equal(3, CpuWorkers.DefaultThreads);
            Assert.Equal(1, CpuWorkers.DefaultThreads);
        }
        Assert.Equal(before, CpuWorkers.DefaultThreads);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuWorkers.UseForEveryPass(0));
    }

    [Fact]
    public async Task Given_a_long_pass_on_the_workers_When_a_newer_pass_is_published_Then_a_worker_leaves_its_pass_to_help_the_newer()
    {
        // A set no other test uses, so no one else's pass is published meanwhile.
        var set = CpuWorkers.Shared(7);
        using var longStarted = new ManualResetEventSlim();
        using var shortDone = new ManualResetEventSlim();
        var shortThreads = new System.Collections.Concurrent.ConcurrentDictionary<int, byte>();
        var longPass = Task.Run(() => set.For(400, c =>
        {
            longStarted.Set();
            if (!shortDone.IsSet) Thread.Sleep(1);
        }));
        Assert.True(longStarted.Wait(TimeSpan.FromSeconds(30)));
        // Chunks that each take long enough that the caller alone cannot claim them all before a worker comes.
        set.For(8, c =>
        {
            shortThreads[Environment.CurrentManagedThreadId] = 0;
            Thread.Sleep(5);
        });
        shortDone.Set();
        await longPass.WaitAsync(TimeSpan.FromSeconds(60));

        // The long pass's worker came over after its current chunk: the short pass ran on two threads, not on its caller alone.
        Assert.True(shortThreads.Count >= 2, $"the newer pass ran on {shortThreads.Count} thread(s)");
    }
}
