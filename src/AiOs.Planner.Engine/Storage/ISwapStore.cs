namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// Byte storage for swapped-out tensors, addressed by key and byte offset. Calls on different keys, and reads of
/// one key, may run concurrently from I/O threads; writes to one key, and a read racing a write of it, may not
/// (a store rewrites and re-checksums whole pieces, so two writes into one piece would lose one's bytes).
/// <see cref="DirectSwapStore"/> uses O_DIRECT through the direct-I/O library; <see cref="FileSwapStore"/> is the
/// buffered one. Both checksum each piece they write and verify it on read unless told not to
/// (<see cref="Execution.EngineOptions.SwapChecksums"/>): a mismatch is an <see cref="InvalidDataException"/>.
/// </summary>
public interface ISwapStore : IDisposable
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> bytes into the object named <paramref name="key"/>, creating it.</summary>
    void Write(string key, long offset, ReadOnlySpan<byte> data);

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/> bytes into <paramref name="key"/>; reading past the object's end is an <see cref="EndOfStreamException"/> (the direct store sees ends at 4 KiB granularity), bytes that differ from those written an <see cref="InvalidDataException"/> naming the file and piece.</summary>
    void Read(string key, long offset, Span<byte> destination);
}
