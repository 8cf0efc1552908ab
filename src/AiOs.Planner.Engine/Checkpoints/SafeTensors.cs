using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>
/// Reads and writes fp32 tensors in the safetensors format (an 8-byte little-endian header length, a JSON
/// header mapping each name to dtype, shape and byte range, then the raw little-endian data), so PyTorch
/// users can load checkpoints with <c>safetensors.torch.load_file</c>.
/// </summary>
public static class SafeTensors
{
    /// <summary>
    /// Writes <paramref name="tensors"/> (name → shape and fp32 values) to <paramref name="path"/>, stored as
    /// <paramref name="dtype"/>: <c>F32</c>, or <c>F16</c> / <c>BF16</c> rounded to nearest even as PyTorch casts.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, long[] Shape, float[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        string dtype = "F32")
    {
        int size = dtype switch
        {
            "F32" => 4,
            "F16" or "BF16" => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype), $"Writing {dtype} is not supported (F32, F16, BF16)."),
        };
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var (name, shape, data) in tensors)
        {
            long elements = shape.Aggregate(1L, (a, b) => a * b);
            if (elements != data.Length) throw new ArgumentException($"Tensor {name}: shape holds {elements} elements, data {data.Length}.", nameof(tensors));
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + (long)size * data.Length),
            };
            offset += (long)size * data.Length;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var (_, _, data) in tensors)
        {
            if (size == 4)
            {
                stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
                continue;
            }
            var narrow = new byte[2L * data.Length];
            if (dtype == "BF16") Optim.PrecisionCast.ToBf16(data, narrow);
            else Optim.PrecisionCast.ToFp16(data, narrow);
            stream.Write(narrow);
        }
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Writes tensors already in their stored form (any dtype, e.g. U8 codes beside F32 scales) to the new file
    /// <paramref name="path"/>, flushed to the drive before it returns.
    /// </summary>
    public static void WriteRaw(string path, IReadOnlyList<RawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (RawTensor t in tensors)
        {
            long elements = t.Shape.Aggregate(1L, (a, b) => a * b);
            int size = SafeTensorsFile.ElementSize(t.DType) ?? throw new ArgumentException($"Tensor {t.Name}: {t.DType} is not a safetensors dtype.", nameof(tensors));
            if (elements * size != t.Data.Length) throw new ArgumentException($"Tensor {t.Name}: shape holds {elements} {t.DType} elements, data {t.Data.Length} bytes.", nameof(tensors));
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (RawTensor t in tensors) stream.Write(t.Data);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Reads every fp32 tensor of <paramref name="path"/> by name; anything malformed is an <see cref="InvalidDataException"/>.</summary>
    public static IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Read(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        var result = new Dictionary<string, (long[], float[])>(StringComparer.Ordinal);
        foreach (var (name, entry) in file.Tensors)
        {
            if (entry.DType != "F32") throw new InvalidDataException($"{path}: tensor {name} is not F32.");
            var data = new float[entry.Elements];
            file.ReadFloats(entry, 0, data);
            result[name] = (entry.Shape.ToArray(), data);
        }
        return result;
    }
}
