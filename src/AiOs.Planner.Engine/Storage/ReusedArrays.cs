using System.Collections.Concurrent;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// Byte arrays reused per exact size: for the arrays <see cref="Execution.ParameterSwapper"/> casts units into for their swap
/// files, and the piece-sized arrays <see cref="FileSwapStore"/> reads partly covered pieces into. The shared array pool
/// served both before 2026-12-05 and kept one per thread that returned one (and more per core), so an NVMe run's host RSS
/// grew by about a unit's bytes every step as the write-backs moved between threads (gpt2-xl: +0.22 GiB a step on the H100,
/// never levelling off within the runs measured). Here an array is only made when every one of its size is in use, so they
/// number at most the users of that size ever running at once (start-up's workers).
/// </summary>
internal sealed class ReusedArrays
{
    private readonly ConcurrentDictionary<int, ConcurrentBag<byte[]>> _free = new();

    /// <summary>An array of exactly <paramref name="bytes"/> bytes: a returned one, else a new one.</summary>
    public byte[] Rent(int bytes) => _free.GetOrAdd(bytes, _ => []).TryTake(out byte[]? array) ? array : new byte[bytes];

    /// <summary>Gives back an array <see cref="Rent"/> handed out, for the next user of its size.</summary>
    public void Return(byte[] array) => _free.GetOrAdd(array.Length, _ => []).Add(array);

    /// <summary>Arrays made so far and waiting for reuse (tests).</summary>
    internal int Free => _free.Values.Sum(b => b.Count);
}
