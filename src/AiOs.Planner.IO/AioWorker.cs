using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using AiOs.Planner.IO.Native;

namespace AiOs.Planner.IO;

/// <summary>
/// One I/O thread with its own kernel AIO context of <c>queue_depth</c> slots. It streams the blocks of
/// the jobs it is given, keeping up to queue_depth requests on the device; jobs queued behind each other
/// flow without a gap. With <c>overlap_events</c> off it submits a batch and waits for all of it before
/// the next; with <c>single_submit</c> on it calls io_submit once per request.
/// </summary>
internal sealed unsafe class AioWorker : IDisposable
{
    private readonly BlockingCollection<IoJob> _incoming = new();
    private readonly Thread _thread;
    private readonly int _depth;
    private readonly bool _singleSubmit;
    private readonly bool _overlapEvents;
    private readonly ulong _context;
    private readonly Iocb* _iocbs;
    private readonly Iocb** _prepared;
    private readonly IoEvent* _events;
    private readonly IoJob?[] _slotJob;
    private readonly Stack<int> _freeSlots = new();

    public AioWorker(int index, int queueDepth, bool singleSubmit, bool overlapEvents)
    {
        _depth = queueDepth;
        _singleSubmit = singleSubmit;
        _overlapEvents = overlapEvents;
        _slotJob = new IoJob?[queueDepth];
        for (int i = queueDepth - 1; i >= 0; i--) _freeSlots.Push(i);
        _iocbs = (Iocb*)NativeMemory.AllocZeroed((nuint)(queueDepth * sizeof(Iocb)));
        _prepared = (Iocb**)NativeMemory.AllocZeroed((nuint)(queueDepth * sizeof(Iocb*)));
        _events = (IoEvent*)NativeMemory.AllocZeroed((nuint)(queueDepth * sizeof(IoEvent)));
        int r = KernelAio.Supported ? KernelAio.Setup(queueDepth, out _context) : -LibC.ENOSYS;
        if (r < 0)
        {
            _context = 0;
            Warning = $"kernel AIO is unavailable ({LibC.Describe(-r)}); I/O runs one request at a time per thread.";
        }
        _thread = new Thread(Run) { IsBackground = true, Name = $"aios-aio-{index}" };
        _thread.Start();
    }

    /// <summary>Set when kernel AIO could not be set up and the worker does blocking I/O instead.</summary>
    public string? Warning { get; }

    public void Enqueue(IoJob job) => _incoming.Add(job);

    private void Run()
    {
        var active = new List<IoJob>();
        int inFlight = 0;
        while (true)
        {
            if (inFlight == 0 && active.Count == 0)
            {
                if (!_incoming.TryTake(out var first, Timeout.Infinite)) return;
                active.Add(first);
            }
            while (_incoming.TryTake(out var more)) active.Add(more);
            if (_context == 0)
            {
                RunBlocking(active, _ => true);
                continue;
            }
            // Kernel AIO on a buffered file runs synchronously inside io_submit (and some devices refuse it), so those jobs use pread/pwrite.
            RunBlocking(active, job => !job.File.IsDirect && job.InFlight == 0);
            if (_overlapEvents || inFlight == 0) inFlight += SubmitReady(active, _depth - inFlight);
            CompleteFinished(active);
            if (inFlight == 0) continue;
            int n = KernelAio.GetEvents(_context, _overlapEvents ? 1 : inFlight, _depth, _events);
            if (n == -LibC.EINTR) continue;
            if (n < 0) throw new InvalidOperationException($"io_getevents failed: {LibC.Describe(-n)}");
            for (int i = 0; i < n; i++) Reap(_events[i]);
            inFlight -= n;
            CompleteFinished(active);
        }
    }

    /// <summary>Prepares up to <paramref name="room"/> requests from the jobs in order and submits them; returns how many the kernel took.</summary>
    private int SubmitReady(List<IoJob> active, int room)
    {
        int count = 0;
        foreach (var job in active)
        {
            if (job.HasMoreToSubmit && job.Token.IsCancellationRequested) job.Cancelled = true;
            while (count < room && job.HasMoreToSubmit)
            {
                int slot = _freeSlots.Pop();
                long n = Math.Min(job.BlockSize, job.Length - job.Submitted);
                Iocb* cb = &_iocbs[slot];
                *cb = default;
                cb->Data = (ulong)slot;
                cb->Opcode = job.IsWrite ? KernelAio.OpWrite : KernelAio.OpRead;
                cb->FileDescriptor = (uint)job.File.Descriptor;
                cb->Buffer = (ulong)(job.Buffer.Address + job.BufferOffset + job.Submitted);
                cb->Bytes = (ulong)n;
                cb->Offset = job.FileOffset + job.Submitted;
                _slotJob[slot] = job;
                _prepared[count++] = cb;
                job.Submitted += n;
                job.InFlight++;
            }
        }
        int taken = 0;
        while (taken < count)
        {
            int r = KernelAio.Submit(_context, _singleSubmit ? 1 : count - taken, _prepared + taken);
            if (r == -LibC.EINTR || r == -LibC.EAGAIN && taken > 0) continue;
            if (r <= 0)
            {
                // The kernel refused the rest: fail their jobs and give the slots back.
                int errno = r == 0 ? LibC.EAGAIN : -r;
                for (int i = taken; i < count; i++)
                {
                    var job = _slotJob[(int)_prepared[i]->Data]!;
                    Release((int)_prepared[i]->Data);
                    job.InFlight--;
                    job.Error ??= DirectIoException.FromErrno(errno, "io_submit " + job.Operation, job.File.Path);
                }
                break;
            }
            taken += r;
        }
        return taken;
    }

    private void Reap(IoEvent e)
    {
        int slot = (int)e.Data;
        var job = _slotJob[slot]!;
        long expected = (long)_iocbs[slot].Bytes;
        Release(slot);
        job.InFlight--;
        if (e.Result < 0)
        {
            job.Error ??= DirectIoException.FromErrno((int)-e.Result, job.Operation, job.File.Path);
            return;
        }
        job.Done += e.Result;
        if (e.Result >= expected) return;
        if (job.IsWrite)
            job.Error ??= new DiskFullException($"write {job.File.Path}: the drive took only {e.Result} of {expected} bytes, which usually means the disk is full.", LibC.ENOSPC);
        else
            job.ReachedEnd = true;
    }

    private void Release(int slot)
    {
        _slotJob[slot] = null;
        _freeSlots.Push(slot);
    }

    private static void CompleteFinished(List<IoJob> active)
    {
        for (int i = 0; i < active.Count; i++)
        {
            var job = active[i];
            if (job.HasMoreToSubmit && job.InFlight == 0 && job.Token.IsCancellationRequested) job.Cancelled = true;
            if (!job.Finished) continue;
            job.Complete();
            active.RemoveAt(i--);
        }
    }

    /// <summary>The path without kernel AIO: each chosen job's blocks one after another with pread/pwrite.</summary>
    private static void RunBlocking(List<IoJob> active, Predicate<IoJob> which)
    {
        foreach (var job in active)
        {
            if (!which(job)) continue;
            try
            {
                while (job.HasMoreToSubmit)
                {
                    if (job.Token.IsCancellationRequested) { job.Cancelled = true; break; }
                    long n = Math.Min(job.BlockSize, job.Length - job.Submitted);
                    long off = job.BufferOffset + job.Submitted;
                    long moved = job.IsWrite
                        ? job.File.Write(job.Buffer, off, n, job.FileOffset + job.Submitted)
                        : job.File.Read(job.Buffer, off, n, job.FileOffset + job.Submitted);
                    job.Submitted += n;
                    job.Done += moved;
                    if (moved < n) job.ReachedEnd = true;
                }
            }
            catch (DirectIoException e)
            {
                job.Error = e;
            }
            job.Complete();
        }
        active.RemoveAll(which);
    }

    public void Dispose()
    {
        _incoming.CompleteAdding();
        _thread.Join();
        if (_context != 0) KernelAio.Destroy(_context);
        NativeMemory.Free(_iocbs);
        NativeMemory.Free(_prepared);
        NativeMemory.Free(_events);
        _incoming.Dispose();
    }
}
