using System.Text.RegularExpressions;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>The tensor-naming conventions that <see cref="PretrainedWeights"/> understands, told apart by the names in a file.</summary>
public enum WeightFamily
{
    /// <summary>Hugging Face GPT-2 (<c>wte.weight</c>, <c>h.{i}.attn.c_attn.weight</c> …), optionally under <c>transformer.</c>.</summary>
    Gpt2,
    /// <summary>Hugging Face Llama (<c>model.embed_tokens.weight</c>, <c>model.layers.{i}.self_attn.q_proj.weight</c> …).</summary>
    Llama,
    /// <summary>This engine's own checkpoints (<c>tok.weight</c>, <c>layers.{i}.attn.q.weight</c> …): weights only, a fresh optimizer.</summary>
    Aios,
}

/// <summary>How a file's tensor is placed into one of our parameters.</summary>
public enum SourceLayout
{
    /// <summary>The same shape and element order as ours.</summary>
    Copy,
    /// <summary>
    /// A GPT-2 <c>Conv1D</c> weight, stored [in, total out] (it computes x·W, where a Linear computes x·Wᵀ); ours is
    /// [out, in]. We take columns [Start, Start + Count) transposed: ours[o, i] = file[i, Start + o].
    /// </summary>
    Conv1DColumns,
    /// <summary>Elements [Start, Start + Count) of a 1-D tensor (a part of GPT-2's fused q, k, v bias).</summary>
    Range,
}

/// <summary>Where one of our parameters comes from in a pretrained file.</summary>
/// <param name="Name">The file's tensor name.</param>
/// <param name="Shape">The shape the file's tensor must have for our model.</param>
/// <param name="Layout">How its values are placed into ours.</param>
/// <param name="Start">First column (<see cref="SourceLayout.Conv1DColumns"/>) or element (<see cref="SourceLayout.Range"/>) taken.</param>
/// <param name="Count">Columns or elements taken (0 for <see cref="SourceLayout.Copy"/>).</param>
public sealed record TensorSource(string Name, long[] Shape, SourceLayout Layout, long Start = 0, long Count = 0);

/// <summary>
/// Maps our parameter names (<see cref="ParameterLayout"/>) to the tensor names of a Hugging Face GPT-2 or Llama
/// file, or of our own checkpoints, and says which of the file's other tensors are known and safe to ignore.
/// </summary>
/// <remarks>
/// Our layout keeps q, k and v as separate [out, in] Linear weights. GPT-2 fuses them into one Conv1D
/// <c>c_attn</c> of shape [hidden, hidden + 2·kv] (q, then k, then v along the output columns) and stores every
/// Conv1D weight transposed, so its matrices are split and transposed; its biases are split. Llama's
/// <c>{q,k,v,o}_proj</c> are Linear weights already [out, in] and are copied as they are.
/// Rotary positions: <see cref="TransformerOps.Rotary"/> rotates half-split pairs (i, i + D/2) with
/// <c>rotate_half</c>, exactly as Hugging Face's <c>LlamaAttention</c> does, and Hugging Face's Llama weights are
/// stored for that convention (its conversion script permuted Meta's interleaved q/k rows once), so q and k
/// need no permutation here.
/// </remarks>
public static partial class PretrainedNames
{
    /// <summary>
    /// The family of <paramref name="names"/> and the prefix its tensors carry (<c>transformer.</c> or <c>model.</c>
    /// where present), or null when the names match none.
    /// </summary>
    public static (WeightFamily Family, string Prefix)? Detect(IReadOnlyCollection<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var set = names as ISet<string> ?? names.ToHashSet(StringComparer.Ordinal);
        foreach (string prefix in new[] { "transformer.", "" })
            if (set.Contains(prefix + "wte.weight") || names.Any(n => n.StartsWith(prefix + "h.0.", StringComparison.Ordinal)))
                return (WeightFamily.Gpt2, prefix);
        foreach (string prefix in new[] { "model.", "" })
            if (set.Contains(prefix + "embed_tokens.weight") || names.Any(n => n.StartsWith(prefix + "layers.0.self_attn.", StringComparison.Ordinal)))
                return (WeightFamily.Llama, prefix);
        if (set.Contains("tok.weight") || names.Any(n => n.StartsWith("layers.0.attn.", StringComparison.Ordinal)))
            return (WeightFamily.Aios, "");
        return null;
    }

    /// <summary>Readable name of a family, for messages.</summary>
    public static string Describe(WeightFamily family) => family switch
    {
        WeightFamily.Gpt2 => "GPT-2",
        WeightFamily.Llama => "Llama",
        _ => "aios checkpoint",
    };

    /// <summary>
    /// Why a model of <paramref name="spec"/> cannot take weights of <paramref name="family"/> (its norm, feed-forward
    /// block or positions differ), or null when it can.
    /// </summary>
    public static string? Incompatibility(ModelSpec spec, WeightFamily family)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string shape = Shape(spec);
        return family switch
        {
            WeightFamily.Gpt2 when spec.Norm != NormKind.Layernorm || spec.FfnKind != FfnKind.GeluMlp || spec.Positions != PositionKind.Learned
                || !(spec.HasQkvBias && spec.HasAttentionOutputBias && spec.HasMlpBias) =>
                $"the file holds GPT-2 weights (LayerNorm, GELU MLP, learned positions, biases) but the model is {shape}",
            WeightFamily.Llama when spec.Norm != NormKind.Rmsnorm || spec.FfnKind != FfnKind.Swiglu || spec.Positions != PositionKind.Rotary =>
                $"the file holds Llama weights (RMSNorm, SwiGLU, rotary positions) but the model is {shape}",
            _ => null,
        };
    }

    /// <summary>
    /// The prefix Hugging Face's causal-LM classes save the body under (<c>GPT2LMHeadModel.transformer</c>,
    /// <c>LlamaForCausalLM.model</c>); the head, <c>lm_head.weight</c>, stays outside it. Our checkpoints use none.
    /// </summary>
    public static string SavedPrefix(WeightFamily family) => family switch
    {
        WeightFamily.Gpt2 => "transformer.",
        WeightFamily.Llama => "model.",
        _ => "",
    };

    /// <summary>
    /// The Hugging Face family whose tensors and <c>config.json</c> compute <paramref name="spec"/> exactly (the
    /// direction of export), or the reason none does.
    /// </summary>
    public static (WeightFamily? Family, string? Why) FamilyFor(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (Incompatibility(spec, WeightFamily.Gpt2) is null)
        {
            // GPT-2's fused c_attn is [hidden, 3·hidden]: Hugging Face's GPT-2 has no grouped-query attention.
            return spec.KvHeads == spec.NumHeads ? (WeightFamily.Gpt2, null)
                : (null, $"GPT-2 has no grouped-query attention, but the model has {spec.KvHeads} kv heads for {spec.NumHeads} heads");
        }
        if (Incompatibility(spec, WeightFamily.Llama) is null) return (WeightFamily.Llama, null);
        return (null, $"the model is {Shape(spec)}, which is neither GPT-2 (LayerNorm, GELU MLP, learned positions, biases) nor Llama (RMSNorm, SwiGLU, rotary positions)");
    }

    /// <summary>The parts of <paramref name="spec"/> that decide its family, for messages.</summary>
    private static string Shape(ModelSpec spec) =>
        $"{spec.Norm.ToString().ToLowerInvariant()}, {(spec.FfnKind == FfnKind.GeluMlp ? "gelu_mlp" : "swiglu")}, "
        + $"{spec.Positions.ToString().ToLowerInvariant()} positions, {BiasText(spec)}";

    private static string BiasText(ModelSpec spec) => (spec.HasQkvBias, spec.HasAttentionOutputBias, spec.HasMlpBias) switch
    {
        (true, true, true) => "with biases",
        (false, false, false) => "no biases",
        var (qkv, o, mlp) => "biases on " + string.Join(", ", new[] { qkv ? "q/k/v" : null, o ? "o" : null, mlp ? "mlp" : null }.OfType<string>()),
    };

    /// <summary>The layer indices that tensor names of <paramref name="family"/> mention.</summary>
    public static SortedSet<int> LayerIndices(IEnumerable<string> names, WeightFamily family, string prefix)
    {
        string pattern = family switch
        {
            WeightFamily.Gpt2 => "^" + Regex.Escape(prefix) + @"h\.(\d+)\.",
            WeightFamily.Llama => "^" + Regex.Escape(prefix) + @"layers\.(\d+)\.",
            _ => @"^layers\.(\d+)\.",
        };
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        var indices = new SortedSet<int>();
        foreach (string name in names)
            if (regex.Match(name) is { Success: true } m && int.TryParse(m.Groups[1].ValueSpan, out int i)) indices.Add(i);
        return indices;
    }

    /// <summary>Where <paramref name="slice"/> of unit <paramref name="unit"/> (a layer index, or L for the outer block) comes from.</summary>
    public static TensorSource Source(ModelSpec spec, WeightFamily family, string prefix, int unit, ParameterSlice slice)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(slice);
        bool outer = unit == spec.NumLayers;
        return family switch
        {
            WeightFamily.Gpt2 => outer ? Gpt2Outer(prefix, slice) : Gpt2Layer(spec, $"{prefix}h.{unit}.", slice),
            WeightFamily.Llama => outer ? LlamaOuter(prefix, slice) : LlamaLayer($"{prefix}layers.{unit}.", slice),
            _ => new TensorSource(outer ? slice.Name : $"layers.{unit}.{slice.Name}", slice.Shape, SourceLayout.Copy),
        };
    }

    /// <summary>
    /// Whether the file's tensor <paramref name="name"/> is known and deliberately not loaded: GPT-2's attention-mask
    /// buffers, a rotary <c>inv_freq</c> buffer, and GPT-2's <c>lm_head.weight</c>, which is the token embedding.
    /// </summary>
    public static bool Ignorable(string name, WeightFamily family, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(spec);
        return family switch
        {
            WeightFamily.Gpt2 => name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
                || (spec.TiedEmbeddings && name == "lm_head.weight"),
            WeightFamily.Llama => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal),
            _ => false,
        };
    }

    private static TensorSource Gpt2Outer(string prefix, ParameterSlice s) => s.Name switch
    {
        "tok.weight" => Copy(prefix + "wte.weight", s),
        "pos.weight" => Copy(prefix + "wpe.weight", s),
        "lnf.weight" => Copy(prefix + "ln_f.weight", s),
        "lnf.bias" => Copy(prefix + "ln_f.bias", s),
        // GPT2LMHeadModel keeps the head outside "transformer.".
        "head.weight" => Copy("lm_head.weight", s),
        _ => throw Unmapped(s, WeightFamily.Gpt2),
    };

    private static TensorSource Gpt2Layer(ModelSpec spec, string h, ParameterSlice s)
    {
        long hidden = spec.HiddenSize, kv = spec.KvDim, ffn = spec.FfnSize, fused = hidden + 2 * kv;
        return s.Name switch
        {
            "ln1.weight" => Copy(h + "ln_1.weight", s),
            "ln1.bias" => Copy(h + "ln_1.bias", s),
            "ln2.weight" => Copy(h + "ln_2.weight", s),
            "ln2.bias" => Copy(h + "ln_2.bias", s),
            "attn.q.weight" => new(h + "attn.c_attn.weight", [hidden, fused], SourceLayout.Conv1DColumns, 0, hidden),
            "attn.k.weight" => new(h + "attn.c_attn.weight", [hidden, fused], SourceLayout.Conv1DColumns, hidden, kv),
            "attn.v.weight" => new(h + "attn.c_attn.weight", [hidden, fused], SourceLayout.Conv1DColumns, hidden + kv, kv),
            "attn.q.bias" => new(h + "attn.c_attn.bias", [fused], SourceLayout.Range, 0, hidden),
            "attn.k.bias" => new(h + "attn.c_attn.bias", [fused], SourceLayout.Range, hidden, kv),
            "attn.v.bias" => new(h + "attn.c_attn.bias", [fused], SourceLayout.Range, hidden + kv, kv),
            "attn.o.weight" => new(h + "attn.c_proj.weight", [hidden, hidden], SourceLayout.Conv1DColumns, 0, hidden),
            "attn.o.bias" => Copy(h + "attn.c_proj.bias", s),
            "mlp.fc.weight" => new(h + "mlp.c_fc.weight", [hidden, ffn], SourceLayout.Conv1DColumns, 0, ffn),
            "mlp.fc.bias" => Copy(h + "mlp.c_fc.bias", s),
            "mlp.proj.weight" => new(h + "mlp.c_proj.weight", [ffn, hidden], SourceLayout.Conv1DColumns, 0, hidden),
            "mlp.proj.bias" => Copy(h + "mlp.c_proj.bias", s),
            _ => throw Unmapped(s, WeightFamily.Gpt2),
        };
    }

    private static TensorSource LlamaOuter(string prefix, ParameterSlice s) => s.Name switch
    {
        "tok.weight" => Copy(prefix + "embed_tokens.weight", s),
        "lnf.weight" => Copy(prefix + "norm.weight", s),
        // LlamaForCausalLM keeps the head outside "model.".
        "head.weight" => Copy("lm_head.weight", s),
        _ => throw Unmapped(s, WeightFamily.Llama),
    };

    private static TensorSource LlamaLayer(string layer, ParameterSlice s)
    {
        // "attn.q.weight" → "self_attn.q_proj.weight", "mlp.gate.bias" → "mlp.gate_proj.bias", and the two norms.
        if (s.Name is "ln1.weight") return Copy(layer + "input_layernorm.weight", s);
        if (s.Name is "ln2.weight") return Copy(layer + "post_attention_layernorm.weight", s);
        if (LlamaProjection().Match(s.Name) is { Success: true } m)
        {
            string block = m.Groups[1].Value == "attn" ? "self_attn" : "mlp";
            return Copy($"{layer}{block}.{m.Groups[2].Value}_proj.{m.Groups[3].Value}", s);
        }
        throw Unmapped(s, WeightFamily.Llama);
    }

    [GeneratedRegex(@"^(attn|mlp)\.(q|k|v|o|gate|up|down)\.(weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex LlamaProjection();

    private static TensorSource Copy(string name, ParameterSlice s) => new(name, s.Shape, SourceLayout.Copy);

    private static InvalidDataException Unmapped(ParameterSlice s, WeightFamily family) =>
        new($"Parameter {s.Name} has no counterpart in {Describe(family)} weights.");
}
