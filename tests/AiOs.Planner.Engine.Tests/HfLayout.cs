using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Writes our units as Hugging Face files would hold them, written here independently of the loader's mapping:
/// GPT-2 with Conv1D weights stored [in, out] and q, k, v fused into c_attn; Llama with its own names.
/// </summary>
internal static class HfLayout
{
    /// <summary>GPT-2 tensors (<c>transformer.</c> names when <paramref name="prefix"/> says so), with the attention-mask buffers and a tied lm_head.</summary>
    public static List<(string Name, long[] Shape, float[] Data)> Gpt2(ModelSpec spec, float[][] units, string prefix = "")
    {
        var layer = ParameterLayout.ForLayer(spec);
        var outer = ParameterLayout.ForOuter(spec);
        var list = new List<(string, long[], float[])>();
        float[] Get(ParameterLayout l, float[] unit, string name)
        {
            ParameterSlice s = l.Find(name)!;
            return unit.AsSpan((int)s.Offset, (int)s.Elements).ToArray();
        }
        list.Add((prefix + "wte.weight", [spec.VocabSize, spec.HiddenSize], Get(outer, units[^1], "tok.weight")));
        list.Add((prefix + "wpe.weight", [spec.MaxSeqLen, spec.HiddenSize], Get(outer, units[^1], "pos.weight")));
        int h = spec.HiddenSize, f = spec.FfnSize, kv = (int)spec.KvDim;
        for (int i = 0; i < spec.NumLayers; i++)
        {
            float[] u = units[i];
            string p = $"{prefix}h.{i}.";
            list.Add((p + "ln_1.weight", [h], Get(layer, u, "ln1.weight")));
            list.Add((p + "ln_1.bias", [h], Get(layer, u, "ln1.bias")));
            // Conv1D: [in, out]; the fused c_attn's output columns are q, then k, then v.
            float[] q = Transpose(Get(layer, u, "attn.q.weight"), h, h);
            float[] k = Transpose(Get(layer, u, "attn.k.weight"), kv, h);
            float[] v = Transpose(Get(layer, u, "attn.v.weight"), kv, h);
            list.Add((p + "attn.c_attn.weight", [h, h + 2 * kv], ConcatColumns(h, (q, h), (k, kv), (v, kv))));
            list.Add((p + "attn.c_attn.bias", [h + 2 * kv], [.. Get(layer, u, "attn.q.bias"), .. Get(layer, u, "attn.k.bias"), .. Get(layer, u, "attn.v.bias")]));
            list.Add((p + "attn.c_proj.weight", [h, h], Transpose(Get(layer, u, "attn.o.weight"), h, h)));
            list.Add((p + "attn.c_proj.bias", [h], Get(layer, u, "attn.o.bias")));
            list.Add((p + "attn.bias", [1, 1, 4, 4], new float[16]));
            list.Add((p + "ln_2.weight", [h], Get(layer, u, "ln2.weight")));
            list.Add((p + "ln_2.bias", [h], Get(layer, u, "ln2.bias")));
            list.Add((p + "mlp.c_fc.weight", [h, f], Transpose(Get(layer, u, "mlp.fc.weight"), f, h)));
            list.Add((p + "mlp.c_fc.bias", [f], Get(layer, u, "mlp.fc.bias")));
            list.Add((p + "mlp.c_proj.weight", [f, h], Transpose(Get(layer, u, "mlp.proj.weight"), h, f)));
            list.Add((p + "mlp.c_proj.bias", [h], Get(layer, u, "mlp.proj.bias")));
        }
        list.Add((prefix + "ln_f.weight", [h], Get(outer, units[^1], "lnf.weight")));
        list.Add((prefix + "ln_f.bias", [h], Get(outer, units[^1], "lnf.bias")));
        list.Add(("lm_head.weight", [spec.VocabSize, h], Get(outer, units[^1], "tok.weight")));
        return list;
    }

    /// <summary>Llama tensors under <c>model.</c>, with an untied <c>lm_head.weight</c>.</summary>
    public static List<(string Name, long[] Shape, float[] Data)> Llama(ModelSpec spec, float[][] units)
    {
        var layer = ParameterLayout.ForLayer(spec);
        var outer = ParameterLayout.ForOuter(spec);
        var list = new List<(string, long[], float[])>();
        (string, long[], float[]) Take(ParameterLayout l, float[] unit, string ours, string theirs)
        {
            ParameterSlice s = l.Find(ours)!;
            return (theirs, s.Shape, unit.AsSpan((int)s.Offset, (int)s.Elements).ToArray());
        }
        list.Add(Take(outer, units[^1], "tok.weight", "model.embed_tokens.weight"));
        for (int i = 0; i < spec.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add(Take(layer, units[i], "ln1.weight", p + "input_layernorm.weight"));
            foreach (string x in new[] { "q", "k", "v", "o" }) list.Add(Take(layer, units[i], $"attn.{x}.weight", $"{p}self_attn.{x}_proj.weight"));
            list.Add(Take(layer, units[i], "ln2.weight", p + "post_attention_layernorm.weight"));
            foreach (string x in new[] { "gate", "up", "down" }) list.Add(Take(layer, units[i], $"mlp.{x}.weight", $"{p}mlp.{x}_proj.weight"));
        }
        list.Add(Take(outer, units[^1], "lnf.weight", "model.norm.weight"));
        list.Add(Take(outer, units[^1], "head.weight", "lm_head.weight"));
        return list;
    }

    /// <summary>Writes <paramref name="tensors"/> as a sharded Hugging Face folder: two shards and <c>model.safetensors.index.json</c>.</summary>
    public static void WriteSharded(string folder, List<(string Name, long[] Shape, float[] Data)> tensors, string dtype)
    {
        Directory.CreateDirectory(folder);
        int half = tensors.Count / 2;
        var map = new JsonObject();
        foreach (var (file, part) in new[] { ("model-00001-of-00002.safetensors", tensors[..half]), ("model-00002-of-00002.safetensors", tensors[half..]) })
        {
            SafeTensors.Write(Path.Combine(folder, file), part, dtype: dtype);
            foreach (var t in part) map[t.Name] = file;
        }
        File.WriteAllText(Path.Combine(folder, PretrainedWeights.IndexFile), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
    }

    /// <summary>Writes a safetensors file whose tensors carry any dtype name, each given its raw bytes.</summary>
    public static void WriteRaw(string path, IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        var all = tensors.ToList();
        foreach (var (name, dtype, shape, data) in all)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + data.Length),
            };
            offset += data.Length;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var stream = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, json.Length);
        stream.Write(length);
        stream.Write(json);
        foreach (var t in all) stream.Write(t.Data);
    }

    /// <summary>[rows, columns] row-major → [columns, rows].</summary>
    public static float[] Transpose(float[] m, int rows, int columns)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) t[c * rows + r] = m[r * columns + c];
        return t;
    }

    private static float[] ConcatColumns(int rows, params (float[] Data, int Columns)[] parts)
    {
        int total = parts.Sum(p => p.Columns);
        var result = new float[rows * total];
        for (int r = 0; r < rows; r++)
        {
            int at = 0;
            foreach (var (data, columns) in parts)
            {
                Array.Copy(data, r * columns, result, r * total + at, columns);
                at += columns;
            }
        }
        return result;
    }
}
