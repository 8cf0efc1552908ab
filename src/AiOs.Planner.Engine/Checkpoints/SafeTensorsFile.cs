using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using AiOs.Planner.Engine.Optim;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>One tensor as a safetensors header describes it.</summary>
/// <param name="Name">The tensor's name in the file.</param>
/// <param name="DType">The file's element type (<c>F32</c>, <c>BF16</c>, <c>I64</c> …).</param>
/// <param name="Shape">The tensor's shape, outermost first.</param>
/// <param name="Begin">First byte of the data, counted from the end of the header.</param>
/// <param name="End">One past the last byte of the data.</param>
public sealed record SafeTensorEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    /// <summary>Elements in the tensor.</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Whether <see cref="SafeTensorsFile.ReadFloats"/> can convert this element type to fp32.</summary>
    public bool Readable => DType is "F32" or "F16" or "BF16";

    /// <summary>The shape as PyTorch prints it, e.g. <c>[768, 2304]</c>.</summary>
    public string ShapeText => ShapeOf(Shape);

    /// <summary><paramref name="shape"/> as PyTorch prints it.</summary>
    public static string ShapeOf(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>
/// A safetensors file opened for reading one tensor at a time: the header is parsed with System.Text.Json and
/// checked against the file's length, and the data is memory-mapped, so a multi-gigabyte file is never read into
/// one managed array. F32, F16 and BF16 tensors are widened to fp32 as they are read (both conversions are exact).
/// </summary>
/// <remarks>
/// <see cref="SafeTensors"/> reads and writes the engine's own small fp32 checkpoints whole; this type is for
/// files written elsewhere (Hugging Face weights), whose size and element types the engine does not choose.
/// </remarks>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>The format's limit on the header (100 MB); anything longer is not a safetensors file.</summary>
    private const long MaxHeaderBytes = 100_000_000;

    /// <summary>Elements converted per slice of a read, so no span passes 2 GiB whatever the tensor's size.</summary>
    private const int ChunkElements = 1 << 22;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _data;
    private bool _disposed;

    private SafeTensorsFile(string path, Dictionary<string, SafeTensorEntry> tensors, Dictionary<string, string> metadata,
        MemoryMappedFile map, MemoryMappedViewAccessor view, byte* data)
    {
        Path = path;
        Tensors = tensors;
        Metadata = metadata;
        _map = map;
        _view = view;
        _data = data;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Every tensor of the header, by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorEntry> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> strings (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens <paramref name="path"/> and checks its header; the data is not read.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a well-formed safetensors file (the message says what is wrong).</exception>
    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist.", path);
        Dictionary<string, SafeTensorEntry> tensors;
        Dictionary<string, string> metadata;
        long dataStart;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            (dataStart, tensors, metadata) = ReadHeader(stream, path);
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor view;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        }
        catch
        {
            map.Dispose();
            throw;
        }
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        return new SafeTensorsFile(path, tensors, metadata, map, view, start + view.PointerOffset + dataStart);
    }

    /// <summary>
    /// Writes elements [<paramref name="firstElement"/>, + destination length) of <paramref name="entry"/>
    /// (row-major, as stored) into <paramref name="destination"/> as fp32.
    /// </summary>
    /// <exception cref="InvalidDataException">The element type is not F32, F16 or BF16.</exception>
    public void ReadFloats(SafeTensorEntry entry, long firstElement, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Tensors.TryGetValue(entry.Name, out SafeTensorEntry? own) || own != entry)
            throw new ArgumentException($"Tensor {entry.Name} is not one of {Path}'s.", nameof(entry));
        if (!entry.Readable) throw new InvalidDataException(UnsupportedDType(entry, Path));
        if (firstElement < 0 || firstElement + destination.Length > entry.Elements)
            throw new ArgumentOutOfRangeException(nameof(firstElement), $"Elements [{firstElement}, {firstElement + destination.Length}) lie outside {entry.Name} ({entry.Elements}).");
        int size = ElementSize(entry.DType)!.Value;
        for (int done = 0; done < destination.Length; done += ChunkElements)
        {
            int count = Math.Min(ChunkElements, destination.Length - done);
            byte* source = _data + entry.Begin + (firstElement + done) * size;
            Span<float> into = destination.Slice(done, count);
            switch (entry.DType)
            {
                case "F32": new ReadOnlySpan<float>(source, count).CopyTo(into); break;
                case "F16": PrecisionCast.AddFp16(into, new ReadOnlySpan<Half>(source, count), overwrite: true); break;
                default: SpanMath.AddBf16(into, new ReadOnlySpan<ushort>(source, count), overwrite: true); break;
            }
        }
    }

    /// <summary>A copy of <paramref name="entry"/>'s raw bytes as stored (any dtype; little-endian), e.g. 8-bit optimizer codes.</summary>
    public byte[] ReadBytes(SafeTensorEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Tensors.TryGetValue(entry.Name, out SafeTensorEntry? own) || own != entry)
            throw new ArgumentException($"Tensor {entry.Name} is not one of {Path}'s.", nameof(entry));
        var bytes = new byte[entry.End - entry.Begin];
        new ReadOnlySpan<byte>(_data + entry.Begin, bytes.Length).CopyTo(bytes);
        return bytes;
    }

    /// <summary>The message for a tensor whose element type cannot be read as fp32.</summary>
    public static string UnsupportedDType(SafeTensorEntry entry, string path) =>
        $"{path}: tensor {entry.Name} is {entry.DType}; only F32, F16 and BF16 weights can be loaded. " +
        "Convert the file first (for example in Python: safetensors.torch.save_file({k: v.float() for k, v in tensors.items()}, path)).";

    /// <summary>Bytes per element of a safetensors dtype, or null for a name the format does not define.</summary>
    public static int? ElementSize(string dtype) => dtype switch
    {
        "BOOL" or "U8" or "I8" or "F8_E4M3" or "F8_E5M2" => 1,
        "I16" or "U16" or "F16" or "BF16" => 2,
        "I32" or "U32" or "F32" => 4,
        "I64" or "U64" or "F64" => 8,
        _ => null,
    };

    private static (long DataStart, Dictionary<string, SafeTensorEntry> Tensors, Dictionary<string, string> Metadata) ReadHeader(FileStream stream, string path)
    {
        string notSafetensors = $"{path} is not a safetensors file";
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (length < 8 || stream.Read(prefix) != 8) throw new InvalidDataException($"{notSafetensors}: it is shorter than the 8-byte header length.");
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (headerLength < 2 || headerLength > MaxHeaderBytes || 8 + headerLength > length)
            throw new InvalidDataException($"{notSafetensors}: its first 8 bytes give a header of {headerLength} bytes in a file of {length} (a PyTorch .bin or other format?).");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + headerLength, dataLength = length - dataStart;
        var tensors = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using JsonDocument doc = JsonDocument.Parse(header);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{notSafetensors}: its header is not a JSON object.");
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind == JsonValueKind.Object)
                        foreach (JsonProperty m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.ToString();
                    continue;
                }
                SafeTensorEntry entry = Entry(p, notSafetensors);
                int? size = ElementSize(entry.DType);
                if (entry.Begin < 0 || entry.End < entry.Begin || entry.End > dataLength || (size is { } s && entry.End - entry.Begin != entry.Elements * s))
                    throw new InvalidDataException($"{path}: tensor {entry.Name} ({entry.DType} {entry.ShapeText}) has an impossible byte range [{entry.Begin}, {entry.End}) in {dataLength} data bytes; the file is truncated or corrupt.");
                tensors[entry.Name] = entry;
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{notSafetensors}: its header is not valid JSON ({e.Message}).", e);
        }
        return (dataStart, tensors, metadata);
    }

    private static SafeTensorEntry Entry(JsonProperty p, string notSafetensors)
    {
        JsonElement e = p.Value;
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out JsonElement dtype) || dtype.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out JsonElement shape) || shape.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || shape.EnumerateArray().Any(d => d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long n) || n < 0)
            || offsets.EnumerateArray().Any(d => d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out _)))
            throw new InvalidDataException($"{notSafetensors}: header entry '{p.Name}' lacks a dtype, shape or data_offsets.");
        return new SafeTensorEntry(p.Name, dtype.GetString()!, shape.EnumerateArray().Select(d => d.GetInt64()).ToArray(),
            offsets[0].GetInt64(), offsets[1].GetInt64());
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
