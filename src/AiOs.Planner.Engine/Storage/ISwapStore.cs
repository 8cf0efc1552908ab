namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// Byte storage for swapped-out tensors, addressed by key and byte offset. Calls on different keys (or
/// disjoint ranges of one key) may run concurrently from I/O threads. <see cref="DirectSwapStore"/> uses
/// O_DIRECT through the direct-I/O library; <see cref="FileSwapStore"/> is the buffered one.
/// </summary>
public interface ISwapStore : IDisposable
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> bytes into the object named <paramref name="key"/>, creating it.</summary>
    void Write(string key, long offset, ReadOnlySpan<byte> data);

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/> bytes into <paramref name="key"/>; reading past the object's end is an error (the direct store sees ends at 4 KiB granularity).</summary>
    void Read(string key, long offset, Span<byte> destination);
}
