using System.Buffers.Binary;
using AiOs.Planner.IO;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>
/// Fresh contents for data a probe writes: every 4 KiB page carries its file offset and a sequence number, so a
/// deduplicating or compressing store (a host under a virtual disk, some SSDs) cannot shortcut the writes or
/// serve later reads from one cached copy — the same reason fio scrambles its buffers.
/// </summary>
internal static class PageStamp
{
    /// <summary>Writes <paramref name="fileOffset"/> + the page's position and <paramref name="sequence"/> into the first 16 bytes of every page of <paramref name="data"/>.</summary>
    public static void Write(Span<byte> data, long fileOffset, long sequence)
    {
        for (int page = 0; page < data.Length; page += AlignedBuffer.Alignment)
        {
            BinaryPrimitives.WriteInt64LittleEndian(data[page..], fileOffset + page);
            BinaryPrimitives.WriteInt64LittleEndian(data[(page + sizeof(long))..], sequence);
        }
    }
}
