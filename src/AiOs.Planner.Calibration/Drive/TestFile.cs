using AiOs.Planner.IO;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>
/// The calibration's scratch file in the folder under test: sized to what is free, reserved up front with
/// fallocate, and deleted on <see cref="Dispose"/> (callers dispose in <c>finally</c>, so Ctrl-C leaves
/// nothing behind).
/// </summary>
public sealed class TestFile : IDisposable
{
    /// <summary>Space left free beside the test file, so calibration never fills a drive others use.</summary>
    public static readonly Bytes Headroom = Bytes.FromMiB(512);

    private TestFile(string path, DirectFile file, Bytes size, string? shrinkNote)
    {
        Path = path;
        File = file;
        Size = size;
        ShrinkNote = shrinkNote;
    }

    /// <summary>The test file's path (hidden name, in the folder under test).</summary>
    public string Path { get; }
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
        string path = System.IO.Path.Combine(directory, $".aios-calibrate-{System.Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        DirectFile file;
        try
        {
            file = DirectFile.Open(path, DirectFileMode.ReadWrite);
        }
        catch (DirectIoException e) when (e.Errno is 13 or 30 or 1)
        {
            throw new CalibrationException($"{directory} is not writable ({e.Message}); pass a folder you can write to.", e);
        }
        try
        {
            file.Preallocate(size);
            return new TestFile(path, file, size, note);
        }
        catch
        {
            file.Dispose();
            System.IO.File.Delete(path);
            throw;
        }
    }

    public void Dispose()
    {
        File.Dispose();
        System.IO.File.Delete(Path);
    }
}
