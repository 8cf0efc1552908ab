using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Model;

/// <summary>How a parameter starts: GPT-2's initialisation (normal weights, zero biases, unit norm weights).</summary>
public enum ParameterInit
{
    /// <summary>Normal with standard deviation 0.02.</summary>
    Normal,
    /// <summary>Normal with 0.02 / sqrt(2 × layers): projections that write into the residual stream.</summary>
    ResidualNormal,
    Zeros,
    Ones,
}

/// <summary>One parameter tensor inside a unit's flat buffer.</summary>
/// <param name="Name">Dotted name, for example <c>attn.q.weight</c>.</param>
/// <param name="Shape">Tensor shape (PyTorch convention: linear weights are [out, in]).</param>
/// <param name="Offset">First element in the flat buffer.</param>
/// <param name="Init">How the slice is initialised.</param>
public sealed record ParameterSlice(string Name, long[] Shape, long Offset, ParameterInit Init)
{
    /// <summary>Elements in the tensor.</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Consecutive slices of one shape's rows that the layer computes as one tensor (a view over all of them): q, k and v's
/// weights as one [h + 2·kv, h] matrix, so the projection is one matrix product forward and three kernels backward instead
/// of three and eleven (1.3–1.7× faster dispatch-bound layers on the CPU; no measurable change on an H100 VM). The members
/// keep their own names and places.
/// </summary>
/// <param name="Name">Name of the joint view, for example <c>attn.qkv.weight</c>.</param>
/// <param name="Shape">Its shape: the members' first dimensions summed, the rest theirs.</param>
/// <param name="Offset">First element: the first member's.</param>
/// <param name="Members">The member slices' names, in buffer order.</param>
public sealed record FusedSlice(string Name, long[] Shape, long Offset, IReadOnlyList<string> Members)
{
    /// <summary>Elements in the joint view.</summary>
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// The parameters of one unit of execution (a transformer layer, or the outer block: embeddings,
/// final norm and untied head) laid out back to back in one flat buffer. A unit is what the engine
/// fetches, computes, offloads and updates as a whole; its flat buffer is what a swap file holds.
/// </summary>
public sealed class ParameterLayout
{
    private readonly List<ParameterSlice> _slices = [];
    private readonly List<FusedSlice> _fused = [];

    private ParameterLayout(string unit) => Unit = unit;

    /// <summary>Name of the unit (<c>layer</c> or <c>outer</c>).</summary>
    public string Unit { get; }

    /// <summary>The slices in buffer order.</summary>
    public IReadOnlyList<ParameterSlice> Slices => _slices;

    /// <summary>The joint views over consecutive slices (<see cref="FusedSlice"/>).</summary>
    public IReadOnlyList<FusedSlice> Fused => _fused;

    /// <summary>Total elements of the unit.</summary>
    public long Elements { get; private set; }

    /// <summary>The slice named <paramref name="name"/>, or null.</summary>
    public ParameterSlice? Find(string name) => _slices.FirstOrDefault(s => s.Name == name);

    /// <summary>A layout of one flat slice of <paramref name="elements"/> (a ZeRO-3 shard of a unit, whose reduced gradient it carries).</summary>
    public static ParameterLayout Single(string unit, long elements)
    {
        var layout = new ParameterLayout(unit);
        layout._slices.Add(new ParameterSlice(unit, [elements], 0, ParameterInit.Zeros));
        layout.Elements = elements;
        return layout;
    }

    /// <summary>The order of a layer's slices <see cref="ForLayer"/> makes: 2 since 2026-12-06 (joint groups' weights, then their biases).</summary>
    public const int CurrentLayerOrder = 2;

    /// <summary>
    /// The layout of one decoder layer in the order before 2026-12-06 (each weight followed by its bias), in which sharded
    /// checkpoints of that time hold their raw ranges: the same slices and shapes as <see cref="ForLayer"/>, other offsets.
    /// </summary>
    public static ParameterLayout ForLayerBefore20261206(ModelSpec spec)
    {
        var current = ForLayer(spec);
        var legacy = new ParameterLayout("layer");
        var grouped = current.Fused.SelectMany(f => f.Members).ToHashSet(StringComparer.Ordinal);
        foreach (ParameterSlice s in current.Slices)
        {
            if (!grouped.Contains(s.Name)) { legacy.Add(s.Name, s.Shape, s.Init); continue; }
            // A joint group's weight member brings its own bias right after it; its bias member was placed already.
            if (!s.Name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            legacy.Add(s.Name, s.Shape, s.Init);
            string bias = s.Name[..^".weight".Length] + ".bias";
            if (current.Find(bias) is { } b) legacy.Add(b.Name, b.Shape, b.Init);
        }
        return legacy;
    }

    /// <summary>The layout of one decoder layer of <paramref name="spec"/>.</summary>
    public static ParameterLayout ForLayer(ModelSpec spec)
    {
        long h = spec.HiddenSize, kv = spec.KvDim, f = spec.FfnSize;
        var l = new ParameterLayout("layer");
        l.AddNorm(spec, "ln1");
        // Biases per group, as the description says (Qwen2: q, k and v only); TransformerOps.Linear adds whichever exist.
        bool qkv = spec.HasQkvBias, o = spec.HasAttentionOutputBias, mlp = spec.HasMlpBias;
        // q, k and v (and SwiGLU's gate and up) read the same input: their weights, then their biases, lie back to back, so
        // each group is also one matrix (Fused). Zero biases draw nothing from the unit's stream, so every weight's initial
        // values are the ones of the order before 2026-12-06 (each weight followed by its bias).
        l.AddLinears("attn.qkv", [("attn.q", h), ("attn.k", kv), ("attn.v", kv)], h, ParameterInit.Normal, qkv);
        l.AddLinear("attn.o", h, h, ParameterInit.ResidualNormal, o);
        l.AddNorm(spec, "ln2");
        if (spec.FfnKind == FfnKind.GeluMlp)
        {
            l.AddLinear("mlp.fc", f, h, ParameterInit.Normal, mlp);
            l.AddLinear("mlp.proj", h, f, ParameterInit.ResidualNormal, mlp);
        }
        else
        {
            l.AddLinears("mlp.gate_up", [("mlp.gate", f), ("mlp.up", f)], h, ParameterInit.Normal, mlp);
            l.AddLinear("mlp.down", h, f, ParameterInit.ResidualNormal, mlp);
        }
        return l;
    }

    /// <summary>Linear layers over one input: their weights back to back, then their biases, each group also a <see cref="FusedSlice"/> named <paramref name="joint"/>.</summary>
    private void AddLinears(string joint, (string Name, long OutFeatures)[] linears, long inFeatures, ParameterInit init, bool bias)
    {
        long rows = linears.Sum(x => x.OutFeatures);
        _fused.Add(new FusedSlice(joint + ".weight", [rows, inFeatures], Elements, [.. linears.Select(x => x.Name + ".weight")]));
        foreach (var (name, outFeatures) in linears) Add(name + ".weight", [outFeatures, inFeatures], init);
        if (!bias) return;
        _fused.Add(new FusedSlice(joint + ".bias", [rows], Elements, [.. linears.Select(x => x.Name + ".bias")]));
        foreach (var (name, outFeatures) in linears) Add(name + ".bias", [outFeatures], ParameterInit.Zeros);
    }

    /// <summary>The layout of the outer block: token (and position) embeddings, final norm, untied head.</summary>
    public static ParameterLayout ForOuter(ModelSpec spec)
    {
        var l = new ParameterLayout("outer");
        l.Add("tok.weight", [spec.VocabSize, spec.HiddenSize], ParameterInit.Normal);
        if (spec.Positions == PositionKind.Learned)
            l.Add("pos.weight", [spec.MaxSeqLen, spec.HiddenSize], ParameterInit.Normal);
        l.AddNorm(spec, "lnf");
        if (!spec.TiedEmbeddings)
            l.Add("head.weight", [spec.VocabSize, spec.HiddenSize], ParameterInit.Normal);
        return l;
    }

    private void AddNorm(ModelSpec spec, string name)
    {
        Add(name + ".weight", [spec.HiddenSize], ParameterInit.Ones);
        if (spec.Norm == NormKind.Layernorm) Add(name + ".bias", [spec.HiddenSize], ParameterInit.Zeros);
    }

    private void AddLinear(string name, long outFeatures, long inFeatures, ParameterInit init, bool bias)
    {
        Add(name + ".weight", [outFeatures, inFeatures], init);
        if (bias) Add(name + ".bias", [outFeatures], ParameterInit.Zeros);
    }

    private void Add(string name, long[] shape, ParameterInit init)
    {
        var slice = new ParameterSlice(name, shape, Elements, init);
        _slices.Add(slice);
        Elements += slice.Elements;
    }

    /// <summary>
    /// Fills <paramref name="flat"/> (fp32, <see cref="Elements"/> long) with the unit's seeded initial
    /// values. The stream depends only on (seed, unit index), so every executor starts from the same weights.
    /// </summary>
    public void Initialise(Span<float> flat, ModelSpec spec, long seed, int unitIndex) => Initialise(flat, spec, seed, unitIndex, 1 << 20);

    /// <summary>
    /// As <see cref="Initialise(Span{float}, ModelSpec, long, int)"/>, normal slices made in pieces of <paramref name="piece"/> values on
    /// every core. Each normal value takes two draws of the unit's stream in order, so a piece starts its generator that many
    /// draws on (<see cref="SplitMix64.After"/>) and the values equal the sequential ones bit for bit, whatever the piece size:
    /// a 13B model's 327-million-value layers are made at memory speed, not one core's (4 minutes before).
    /// </summary>
    internal unsafe void Initialise(Span<float> flat, ModelSpec spec, long seed, int unitIndex, int piece)
    {
        if (flat.Length != Elements) throw new ArgumentException($"Expected {Elements} elements, got {flat.Length}.", nameof(flat));
        ulong start = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)unitIndex + 1);
        double residualStd = 0.02 / Math.Sqrt(2.0 * spec.NumLayers);
        long draws = 0;
        foreach (ParameterSlice s in _slices)
        {
            Span<float> part = flat.Slice(checked((int)s.Offset), checked((int)s.Elements));
            switch (s.Init)
            {
                case ParameterInit.Zeros: part.Clear(); break;
                case ParameterInit.Ones: part.Fill(1f); break;
                default:
                    double std = s.Init == ParameterInit.ResidualNormal ? residualStd : 0.02;
                    long first = draws;
                    int length = part.Length, pieces = (int)((length + (long)piece - 1) / piece);
                    fixed (float* at = part)
                    {
                        nint address = (nint)at;
                        CpuWorkers.ForCores().For(pieces, k =>
                        {
                            int from = (int)Math.Min(length, k * piece), to = (int)Math.Min(length, (long)from + piece);
                            var rng = SplitMix64.After(start, first + 2L * from);
                            float* values = (float*)address;
                            for (int i = from; i < to; i++) values[i] = (float)(std * rng.NextGaussian());
                        });
                    }
                    draws += 2L * length;
                    break;
            }
        }
    }
}
