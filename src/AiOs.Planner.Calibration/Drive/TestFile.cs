using System.Runtime.InteropServices;
using AiOs.Planner.IO;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>
/// The calibration's scratch file in the folder under test: sized to what is free, reserved up front with
/// fallocate, and deleted on <see cref="Dispose"/> (callers dispose in <c>finally</c>). Its name is recognisable and
/// unpredictable (<see cref="ScratchNames"/>), it is created exclusively (a planted link is never written through), and
/// while it exists SIGINT, SIGTERM and SIGHUP remove it at once, before the process may end; a file left by
/// <c>kill -9</c> is listed by <c>aios check-nvme</c> and removed by <c>aios clean</c>.
/// </summary>
public sealed class TestFile : IDisposable
{
    /// <summary>Space left free beside the test file, so calibration never fills a drive others use.</summary>
    public static readonly Bytes Headroom = Bytes.FromMiB(512);

    private readonly NameGuard _name;

    private TestFile(NameGuard name, DirectFile file, Bytes size, string? shrinkNote)
    {
        _name = name;
        File = file;
        Size = size;
        ShrinkNote = shrinkNote;
    }

    /// <summary>
    /// The file's name and the signal handlers that remove it, registered before the file is created: a signal while it is
    /// being reserved (fallocate of hundreds of MB) removes it too (CI twice found one left by a signal in that window).
    /// The handlers do not cancel the signal: the default action (or the command line's own handler) still runs.
    /// </summary>
    private sealed class NameGuard : IDisposable
    {
        private readonly PosixSignalRegistration[] _signals;
        private int _removed;

        public NameGuard(string path)
        {
            Path = path;
            _signals = OperatingSystem.IsWindows() ? []
                : [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(s => PosixSignalRegistration.Create(s, _ => Remove()))];
        }

        public string Path { get; }

        /// <summary>Removes the name once (open I/O goes on until the handle closes; the space is freed then). Unlink never follows a link.</summary>
        public void Remove()
        {
            if (Interlocked.Exchange(ref _removed, 1) == 0) System.IO.File.Delete(Path);
        }

        /// <summary>Unregisters the handlers.</summary>
        public void Dispose()
        {
            foreach (var registration in _signals) registration.Dispose();
        }
    }

    /// <summary>The test file's path (hidden name, in the folder under test).</summary>
    public string Path => _name.Path;
    /// <summary>The open file (O_DIRECT where supported).</summary>
    public DirectFile File { get; }
    /// <summary>Bytes reserved for the test.</summary>
    public Bytes Size { get; }
    /// <summary>Says how the file was shrunk for lack of space, or null.</summary>
    public string? ShrinkNote { get; }

    /// <summary>
    /// The size to use: <paramref name="desired"/> when it fits beside <see cref="Headroom"/>, else what fits
    /// (whole 64 MiB), but never below <paramref name="minimum"/>; then it throws saying how much is needed.
    /// </summary>
    public static (Bytes Size, string? Note) PlanSize(Bytes desired, Bytes minimum, Bytes available, string directory)
    {
        var fits = available - Headroom;
        if (desired <= fits) return (desired, null);
        var shrunk = new Bytes(Math.Max(0, fits.Value) / Bytes.FromMiB(64).Value * Bytes.FromMiB(64).Value);
        if (shrunk < minimum)
            throw new CalibrationException(
                $"{directory} has {available} free; the drive test needs {desired} (at least {minimum}) plus {Headroom} headroom. Free {minimum + Headroom - available} or choose another --nvme-path.");
        return (shrunk, $"test file shrunk from {desired} to {shrunk}: only {available} free in {directory}; a file smaller than a host or drive cache may measure the cache");
    }

    /// <summary>Creates and reserves the test file in <paramref name="directory"/>.</summary>
    public static TestFile Create(string directory, Bytes desired, Bytes minimum)
    {
        if (!Directory.Exists(directory))
            throw new CalibrationException($"{directory} does not exist; create it or pass an existing folder on the drive to test.");
        var available = new Bytes(new DriveInfo(System.IO.Path.GetFullPath(directory)).AvailableFreeSpace);
        var (size, note) = PlanSize(desired, minimum, available, directory);
        var name = new NameGuard(System.IO.Path.Combine(directory, ScratchNames.New(ScratchKind.CalibrationFile)));
        DirectFile file;
        try
        {
            file = DirectFile.Open(name.Path, DirectFileMode.CreateNew);
        }
        catch (DirectIoException e) when (e.Errno is 13 or 30 or 1)
        {
            name.Dispose();
            throw new CalibrationException($"{directory} is not writable ({e.Message}); pass a folder you can write to.", e);
        }
        catch
        {
            name.Dispose();
            throw;
        }
        try
        {
            file.Preallocate(size);
            return new TestFile(name, file, size, note);
        }
        catch
        {
            file.Dispose();
            name.Remove();
            name.Dispose();
            throw;
        }
    }

    /// <summary>What a signal does: removes the file's name (open I/O goes on until the handle closes; the space is freed then).</summary>
    internal void OnSignal(PosixSignalContext context) => _name.Remove();

    public void Dispose()
    {
        _name.Dispose();
        File.Dispose();
        _name.Remove();
    }
}
