using System.Text.Json.Serialization;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Models;

/// <summary>The feed-forward block of a layer.</summary>
public enum FfnKind
{
    /// <summary>Two matrices with a GELU between them (GPT-2, GPT-3).</summary>
    GeluMlp,
    /// <summary>Gate, up and down matrices with SiLU gating (Llama).</summary>
    Swiglu,
}

/// <summary>Normalisation layers; LayerNorm has a weight and a bias, RMSNorm a weight only.</summary>
public enum NormKind
{
    Layernorm,
    Rmsnorm,
}

/// <summary>How positions are encoded: a learned table (parameters) or rotary (none).</summary>
public enum PositionKind
{
    Learned,
    Rotary,
}

/// <summary>
/// A decoder-only transformer, as in <c>models/*.json</c>. Parameter counts follow the reference
/// implementations (Hugging Face GPT-2 and Llama) exactly.
/// </summary>
public sealed record ModelSpec
{
    /// <summary>The rotary base when a description gives none (Llama 2's, and what the engine always used before).</summary>
    public const double DefaultRopeTheta = 10000.0;
    /// <summary>The norm epsilon when a description gives none (GPT-2's and Llama 2's).</summary>
    public const double DefaultNormEps = 1e-5;

    public required string Name { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    /// <summary>Key/value heads (grouped-query attention); equal to <see cref="NumHeads"/> for multi-head attention.</summary>
    public int? NumKvHeads { get; init; }
    /// <summary>Inner size of the feed-forward block.</summary>
    public required int FfnSize { get; init; }
    public required FfnKind FfnKind { get; init; }
    public required NormKind Norm { get; init; }
    public required bool TiedEmbeddings { get; init; }
    public required PositionKind Positions { get; init; }
    public required int MaxSeqLen { get; init; }
    /// <summary>Whether linear layers carry biases (GPT-2 yes, Llama no).</summary>
    public bool Bias { get; init; }
    /// <summary>Whether the Q, K and V projections carry biases (Qwen2: yes while the rest have none); null follows <see cref="Bias"/>.</summary>
    public bool? QkvBias { get; init; }
    /// <summary>Whether the attention output projection carries a bias; null follows <see cref="Bias"/>.</summary>
    public bool? AttentionOutputBias { get; init; }
    /// <summary>Whether the feed-forward matrices carry biases (Hugging Face <c>mlp_bias</c>); null follows <see cref="Bias"/>.</summary>
    public bool? MlpBias { get; init; }
    /// <summary>
    /// Tokens each position attends back to (Mistral's <c>sliding_window</c>), or null for full causal attention. The engine
    /// computes full causal attention, which equals the window for sequences no longer than it, so it refuses longer ones;
    /// planning is unchanged (memory-efficient attention keeps no score matrix either way).
    /// </summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Dropout probability used in training (GPT-2 configs: 0.1); dropout keeps a one-byte mask per element.</summary>
    public double Dropout { get; init; }
    /// <summary>The GELU of a <see cref="FfnKind.GeluMlp"/> block (GPT-2: the tanh approximation); SwiGLU always uses SiLU.</summary>
    [JsonConverter(typeof(ChoiceJsonConverter<ActivationKind>))]
    public ActivationKind Activation { get; init; } = ActivationKind.Gelu;
    /// <summary>Base θ of the rotary angles t / θ^(2i/D) (Llama 2: 10000, Llama 3: 500000); unused with learned positions.</summary>
    public double RopeTheta { get; init; } = DefaultRopeTheta;
    /// <summary>Rescaling of the rotary inverse frequencies (Llama 3.1), or null for none.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>The ε added to the variance in every LayerNorm or RMSNorm.</summary>
    public double NormEps { get; init; } = DefaultNormEps;
    /// <summary>Free text: where the shape comes from.</summary>
    public string? Description { get; init; }

    public int KvHeads => NumKvHeads ?? NumHeads;
    public int HeadDim => HiddenSize / NumHeads;
    public long KvDim => (long)KvHeads * HeadDim;
    /// <summary>Whether Q, K and V carry biases, after <see cref="QkvBias"/> falls back to <see cref="Bias"/>.</summary>
    public bool HasQkvBias => QkvBias ?? Bias;
    /// <summary>Whether the attention output projection carries a bias, after the fallback to <see cref="Bias"/>.</summary>
    public bool HasAttentionOutputBias => AttentionOutputBias ?? Bias;
    /// <summary>Whether the feed-forward matrices carry biases, after the fallback to <see cref="Bias"/>.</summary>
    public bool HasMlpBias => MlpBias ?? Bias;

    /// <summary>Parameters of one norm layer.</summary>
    public long NormParameters => Norm == NormKind.Layernorm ? 2L * HiddenSize : HiddenSize;

    /// <summary>Parameters of the attention block: Q, K, V and output projections (and biases).</summary>
    public long AttentionParameters
    {
        get
        {
            long h = HiddenSize;
            long weights = h * h + 2 * h * KvDim + h * h;
            long biases = (HasQkvBias ? h + 2 * KvDim : 0) + (HasAttentionOutputBias ? h : 0);
            return weights + biases;
        }
    }

    /// <summary>Parameters of the feed-forward block.</summary>
    public long FfnParameters
    {
        get
        {
            long h = HiddenSize, f = FfnSize;
            return FfnKind switch
            {
                FfnKind.GeluMlp => 2 * h * f + (HasMlpBias ? f + h : 0),
                FfnKind.Swiglu => 3 * h * f + (HasMlpBias ? 2 * f + h : 0),
                _ => throw new InvalidOperationException($"Unknown FFN kind {FfnKind}."),
            };
        }
    }

    /// <summary>Parameters of one transformer layer (two norms, attention, feed-forward).</summary>
    public long LayerParameters => 2 * NormParameters + AttentionParameters + FfnParameters;

    /// <summary>Token embedding plus learned position embedding, when present.</summary>
    public long EmbeddingParameters =>
        (long)VocabSize * HiddenSize + (Positions == PositionKind.Learned ? (long)MaxSeqLen * HiddenSize : 0);

    /// <summary>The final norm and, when untied, the output projection.</summary>
    public long HeadParameters => NormParameters + (TiedEmbeddings ? 0 : (long)VocabSize * HiddenSize);

    /// <summary>Every trainable parameter.</summary>
    public long TotalParameters => EmbeddingParameters + NumLayers * LayerParameters + HeadParameters;

    /// <summary>The largest single module that must be whole on a GPU at once (ZeRO-3 gathers one at a time).</summary>
    public long LargestLayerParameters =>
        Math.Max(LayerParameters, Math.Max((long)VocabSize * HiddenSize, EmbeddingParameters));

    /// <summary>Weights of the matrix multiplications in one layer (biases and norms excluded): the FLOP-bearing parameters.</summary>
    public long LayerMatmulParameters
    {
        get
        {
            long h = HiddenSize, f = FfnSize;
            long attn = 2 * h * h + 2 * h * KvDim;
            long ffn = FfnKind == FfnKind.Swiglu ? 3 * h * f : 2 * h * f;
            return attn + ffn;
        }
    }

    /// <summary>
    /// Upper bounds of a description's sizes. Each is far above any published model (the deepest has about
    /// 1,000 layers, the widest hidden size 160K in the ZeRO-Infinity 100T shape, vocabularies 256K, contexts
    /// 10M), and together they keep every byte count of the planner inside 64 bits (≤ 7·10^16 parameters).
    /// Layers are bounded hardest: the step simulation keeps operations per layer, so its work and memory
    /// grow with <see cref="NumLayers"/> (a billion layers exhausted 24 GB before).
    /// </summary>
    public const int MaxLayers = 4096;
    /// <summary>Largest <see cref="HiddenSize"/> accepted (2^20).</summary>
    public const int MaxHiddenSize = 1 << 20;
    /// <summary>Largest <see cref="FfnSize"/> accepted (2^22).</summary>
    public const int MaxFfnSize = 1 << 22;
    /// <summary>Largest <see cref="VocabSize"/> accepted (2^22).</summary>
    public const int MaxVocabSize = 1 << 22;
    /// <summary>Largest <see cref="MaxSeqLen"/> (and training sequence) accepted (2^24 tokens).</summary>
    public const int MaxSequence = 1 << 24;
    /// <summary>Largest <see cref="RopeTheta"/> accepted.</summary>
    public const double MaxRopeTheta = 1e12;

    /// <summary>Checks every field against its range; throws one error naming the source and each bad field with its value and range.</summary>
    public ModelSpec Validated(string source)
    {
        var p = new ValidationProblems(source);
        if (string.IsNullOrWhiteSpace(Name)) p.Add("$.name", "must not be empty");
        p.Positive("$.vocab_size", VocabSize, MaxVocabSize);
        p.Positive("$.hidden_size", HiddenSize, MaxHiddenSize);
        p.Positive("$.num_layers", NumLayers, MaxLayers);
        // Heads cannot outnumber the hidden size (nor KV heads the heads); against a size itself out of range, its own bound.
        int headsLimit = HiddenSize is >= 1 and <= MaxHiddenSize ? HiddenSize : MaxHiddenSize;
        p.Positive("$.num_heads", NumHeads, headsLimit);
        p.Positive("$.ffn_size", FfnSize, MaxFfnSize);
        p.Positive("$.max_seq_len", MaxSeqLen, MaxSequence, " tokens");
        if (!(Dropout >= 0 && Dropout < 1)) p.Add("$.dropout", $"must be in [0, 1) (found {Dropout})");
        if (NumKvHeads is { } kv)
        {
            p.Positive("$.num_kv_heads", kv, NumHeads >= 1 && NumHeads <= headsLimit ? NumHeads : headsLimit);
            if (kv > 0 && NumHeads > 0 && NumHeads % kv != 0)
                p.Add("$.num_kv_heads", $"must divide num_heads ({NumHeads}); found {kv}");
        }
        if (NumHeads > 0 && HiddenSize > 0 && HiddenSize % NumHeads != 0)
            p.Add("$.hidden_size", $"must be a multiple of num_heads ({NumHeads}); found {HiddenSize}");
        if (!Enum.IsDefined(Activation))
            p.Add("$.activation", $"must be one of {Choice.Allowed<ActivationKind>()} (found {(int)Activation})");
        else if (FfnKind == FfnKind.Swiglu && Activation != ActivationKind.Gelu)
            p.Add("$.activation", $"applies to ffn_kind gelu_mlp only (swiglu gates with SiLU); remove it (found {Choice.NameOf(Activation)})");
        p.Positive("$.rope_theta", RopeTheta, MaxRopeTheta);
        if (!(NormEps > 0 && NormEps < 1))
            p.Add("$.norm_eps", $"must be a small positive number below 1, such as 1e-5 (found {NormEps})");
        if (RopeScaling is { } scaling)
        {
            if (Positions != PositionKind.Rotary)
                p.Add("$.rope_scaling", "applies to rotary positions only; remove it or set positions to rotary");
            scaling.Check(p, "$.rope_scaling");
            // Check refuses what is not positive and finite; these add the upper bounds.
            if (scaling.Factor > 1e6) p.Positive("$.rope_scaling.factor", scaling.Factor, 1e6);
            if (scaling.LowFreqFactor > 1e6) p.Positive("$.rope_scaling.low_freq_factor", scaling.LowFreqFactor, 1e6);
            if (scaling.HighFreqFactor > 1e6) p.Positive("$.rope_scaling.high_freq_factor", scaling.HighFreqFactor, 1e6);
            if (scaling.OriginalMaxPositionEmbeddings > MaxSequence)
                p.Positive("$.rope_scaling.original_max_position_embeddings", scaling.OriginalMaxPositionEmbeddings, MaxSequence, " tokens");
        }
        p.ThrowIfAny();
        return this;
    }
}

/// <summary>Tensor-level facts used by offload rules.</summary>
public static class ModelSpecTensors
{
    /// <summary>Elements of the largest single tensor (the embedding or output matrix, or an FFN matrix).</summary>
    public static long LargestTensorElements(this ModelSpec m) =>
        Math.Max((long)m.VocabSize * m.HiddenSize, (long)m.HiddenSize * Math.Max(m.FfnSize, m.HiddenSize));
}
