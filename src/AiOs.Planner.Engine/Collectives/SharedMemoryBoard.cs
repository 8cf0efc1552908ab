using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>What a rank announces before a collective, so that all ranks can check they are doing the same one.</summary>
internal readonly record struct CollectiveCall(long Ordinal, int Operation, CollectiveElement Element, long Count, int Root)
{
    public static readonly string[] Names = ["Join", "Barrier", "AllGather", "ReduceScatter", "AllReduce", "Broadcast"];

    public override string ToString() =>
        $"collective #{Ordinal} {Names[Operation]}" + (Operation >= 2 ? $"({Count} {Element}" + (Operation == 5 ? $", root {Root})" : Operation is 3 or 4 ? $", {(ReduceOperation)Root})" : ")") : "");
}

/// <summary>
/// The memory-mapped rendezvous file of <see cref="SharedMemoryCollectives"/>: a header, one 64-byte slot per rank
/// (barrier generation, state, pid, the call it is in) and one exchange region per rank. Barriers are generation
/// counters: a rank bumps its own and waits until every rank's is at least as high, checking on the way that the
/// ones it waits for are alive; the wait ends at the timeout with an error naming the ranks that did not arrive.
/// </summary>
internal sealed unsafe class SharedMemoryBoard : IDisposable
{
    private const long Magic = 0x3153_4F43_534F_4941; // "AIOSCOS1"
    private const int HeaderBytes = 64, SlotBytes = 64;
    private const int StateJoined = 1, StateLeft = 2, StateFailed = 3;

    private readonly SharedMemoryOptions options;
    private readonly MemoryMappedFile file;
    private readonly MemoryMappedViewAccessor view;
    private readonly byte* baseAddress;
    private readonly long dataOffset;
    private readonly int ownPid = System.Environment.ProcessId;
    private long generation;
    private bool disposed;

    private SharedMemoryBoard(SharedMemoryOptions options, MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        this.options = options;
        this.file = file;
        this.view = view;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        baseAddress = p + view.PointerOffset;
        dataOffset = DataOffset(options.WorldSize);
    }

    public SharedMemoryOptions Options => options;

    /// <summary>Maps the rendezvous file (rank 0 creates it), announces this rank and waits for all to join.</summary>
    public static SharedMemoryBoard Join(SharedMemoryOptions options)
    {
        string path = Path.Combine(options.Folder, SharedMemoryOptions.FileName);
        long total = DataOffset(options.WorldSize) + options.WorldSize * options.RegionBytes;
        if (options.Rank == 0) Create(path, options, total);
        else WaitForFile(path, options);
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        var board = new SharedMemoryBoard(options, file, file.CreateViewAccessor(0, total));
        board.CheckHeader(path);
        board.Slot(options.Rank)->Pid = board.ownPid;
        Volatile.Write(ref board.Slot(options.Rank)->State, StateJoined);
        return board;
    }

    /// <summary>The start of rank <paramref name="rank"/>'s exchange region.</summary>
    public byte* Region(int rank) => baseAddress + dataOffset + rank * options.RegionBytes;

    /// <summary>Writes this rank's call into its slot (read by the others after the next barrier).</summary>
    public void Announce(CollectiveCall call)
    {
        RankSlot* s = Slot(options.Rank);
        s->Ordinal = call.Ordinal;
        s->Operation = call.Operation;
        s->Element = (int)call.Element;
        s->Count = call.Count;
        s->Root = call.Root;
    }

    /// <summary>Fails naming the first rank whose announced call differs from <paramref name="call"/> (programs that differ would deadlock or mix data).</summary>
    public void CheckSameCall(CollectiveCall call)
    {
        for (int r = 0; r < options.WorldSize; r++)
        {
            RankSlot* s = Slot(r);
            var theirs = new CollectiveCall(s->Ordinal, s->Operation, (CollectiveElement)s->Element, s->Count, s->Root);
            if (theirs != call)
                Fail($"Rank {options.Rank} is in {call} but rank {r} is in {theirs}: every rank must run the same collectives in the same order with the same counts.", r);
        }
    }

    /// <summary>Waits until every rank has reached this barrier; <paramref name="call"/> names it in errors.</summary>
    public void Barrier(CollectiveCall call)
    {
        long target = ++generation;
        Volatile.Write(ref Slot(options.Rank)->Generation, target);
        var clock = Stopwatch.StartNew();
        int spins = 0;
        long nextLivenessCheck = 0;
        for (int r = 0; r < options.WorldSize; r++)
        {
            while (Volatile.Read(ref Slot(r)->Generation) < target)
            {
                long elapsed = clock.ElapsedMilliseconds;
                if (elapsed >= nextLivenessCheck)
                {
                    CheckAlive(r, call);
                    nextLivenessCheck = elapsed + 20;
                }
                if (clock.Elapsed >= options.Timeout) Fail(TimeoutMessage(call, target), FirstMissing(target));
                // Spinning briefly catches ranks on other cores; then yield and sleep, so ranks on a busy 2-core box progress.
                if (spins < 64) Thread.SpinWait(32);
                else if (spins < 128) Thread.Yield();
                else Thread.Sleep(1);
                spins++;
            }
        }
    }

    /// <summary>Marks this rank failed (so the others stop waiting at once) and throws.</summary>
    [DoesNotReturn]
    public void Fail(string message, int? rank)
    {
        Volatile.Write(ref Slot(options.Rank)->State, StateFailed);
        throw new CollectiveException(message, rank);
    }

    private void CheckAlive(int r, CollectiveCall call)
    {
        RankSlot* s = Slot(r);
        int state = Volatile.Read(ref s->State);
        int pid = s->Pid;
        if (state is StateLeft or StateFailed)
            Fail($"Rank {options.Rank} waits in {call} for rank {r}, which {(state == StateLeft ? "closed its collectives" : "failed in a collective")} first; see rank {r}'s error.", r);
        if (state == StateJoined && pid != ownPid && ProcessGone(pid))
            Fail($"Rank {options.Rank} waits in {call} for rank {r}, whose process (pid {pid}) has exited; see rank {r}'s error or exit code.", r);
    }

    private string TimeoutMessage(CollectiveCall call, long target)
    {
        var missing = new List<string>();
        for (int r = 0; r < options.WorldSize; r++)
        {
            RankSlot* s = Slot(r);
            if (Volatile.Read(ref s->Generation) >= target) continue;
            missing.Add(Volatile.Read(ref s->State) == 0 ? $"rank {r} (never joined)" : $"rank {r} (pid {s->Pid}, last in collective #{s->Ordinal})");
        }
        return $"Rank {options.Rank} waited {options.Timeout.TotalSeconds:0.###} s in {call} for {string.Join(", ", missing)}: " +
               "the rank is stuck, much slower, or was never started; check its log (raise the collective timeout only if it is just slow).";
    }

    private int? FirstMissing(long target)
    {
        for (int r = 0; r < options.WorldSize; r++)
            if (Volatile.Read(ref Slot(r)->Generation) < target) return r;
        return null;
    }

    /// <summary>Whether <paramref name="pid"/> no longer runs: no /proc entry, or a zombie its parent has not reaped yet.</summary>
    private static bool ProcessGone(int pid)
    {
        if (pid <= 0 || !OperatingSystem.IsLinux()) return false;
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close >= 0 && close + 2 < stat.Length && stat[close + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static void Create(string path, SharedMemoryOptions options, long total)
    {
        Directory.CreateDirectory(options.Folder);
        if (File.Exists(path))
            throw new CollectiveException($"The rendezvous folder {options.Folder} was already used (it holds {SharedMemoryOptions.FileName}): give each run a fresh folder.", 0);
        // Built under a temporary name and renamed, so the others never map a file whose header is not written yet.
        string temp = path + $".{System.Environment.ProcessId}.tmp";
        using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
        {
            stream.SetLength(total);
            using var writer = new BinaryWriter(stream);
            writer.Write(Magic);
            writer.Write(options.WorldSize);
            writer.Write(0);
            writer.Write(options.RegionBytes);
            writer.Flush();
        }
        File.Move(temp, path);
    }

    private static void WaitForFile(string path, SharedMemoryOptions options)
    {
        var clock = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (clock.Elapsed >= options.Timeout)
                throw new CollectiveException($"Rank {options.Rank} waited {options.Timeout.TotalSeconds:0.###} s for rank 0 to create {path}: rank 0 was not started, failed before joining, or was given another folder.", 0);
            Thread.Sleep(5);
        }
    }

    private void CheckHeader(string path)
    {
        long magic = *(long*)baseAddress;
        int world = *(int*)(baseAddress + 8);
        long region = *(long*)(baseAddress + 16);
        if (magic != Magic) throw new CollectiveException($"{path} is not a rendezvous file of aios collectives.", 0);
        if (world != options.WorldSize || region != options.RegionBytes)
            throw new CollectiveException($"Rank {options.Rank} was started for {options.WorldSize} ranks with {options.RegionBytes}-byte regions, but rank 0 made {path} for {world} ranks with {region}-byte regions: start every rank with the same world size.", 0);
    }

    private RankSlot* Slot(int rank) => (RankSlot*)(baseAddress + HeaderBytes + rank * SlotBytes);

    private static long DataOffset(int world) => (HeaderBytes + world * SlotBytes + 4095) / 4096 * 4096;

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        RankSlot* s = Slot(options.Rank);
        if (Volatile.Read(ref s->State) == StateJoined) Volatile.Write(ref s->State, StateLeft);
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        file.Dispose();
    }

    /// <summary>One rank's 64-byte slot in the header.</summary>
    private struct RankSlot
    {
        public long Generation;
        public int State;
        public int Pid;
        public long Ordinal;
        public int Operation;
        public int Element;
        public long Count;
        public int Root;
    }
}
