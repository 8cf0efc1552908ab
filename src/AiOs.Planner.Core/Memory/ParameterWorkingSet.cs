using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Memory;

/// <summary>
/// What DeepSpeed's ZeRO-3 keeps gathered on one GPU when it fetches, gathers and releases parameters module by
/// module (<c>PartitionedParameterCoordinator</c>): the weight matrix computing (a tile of it under memory-centric
/// tiling), what the prefetch bucket has fetched ahead, the gradients of the few matrices not yet reduced, and the
/// small tensors that never leave. Counted in elements; bytes follow the training precision. Whole transformer
/// blocks are never gathered at once, so the working set follows the largest matrix, not the largest block.
/// </summary>
public sealed record ParameterWorkingSet
{
    /// <summary>DeepSpeed's default <c>stage3_prefetch_bucket_size</c> (deepspeed/runtime/zero/config.py: 5e7 elements).</summary>
    public const long DeepSpeedPrefetchBucket = 50_000_000;

    /// <summary>The largest module (or tile) gathered while it computes: its parameters, and its gradients in backward.</summary>
    public required long Tile { get; init; }
    /// <summary>Elements fetched ahead of the module computing: the bucket, overshot by at most one module (the fetch loop stops once the bucket is full).</summary>
    public required long Prefetched { get; init; }
    /// <summary>Gradient elements waiting on the device: the module being written and two leaving (reduce-scatter or copy to the host).</summary>
    public required long GradientBuckets { get; init; }
    /// <summary>Elements of tensors at or below <c>stage3_param_persistence_threshold</c>: gathered once and kept on every GPU.</summary>
    public required long Persistent { get; init; }

    /// <summary>Gathered parameter elements at once (the computing module and the prefetched), as <c>stage3_max_live_parameters</c> bounds them.</summary>
    public long Live => Tile + Prefetched;

    /// <summary>The working set of <paramref name="s"/> on <paramref name="m"/>.</summary>
    public static ParameterWorkingSet For(ModelSpec m, TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(s);
        long tile = LargestTile(m, s.TilingFactor);
        long bucket = PrefetchBucket(m, s);
        long ahead = bucket == 0 ? 0 : bucket - 1 + tile;
        // DeepSpeed releases kept parameters before fetching past max_live_parameters; it never refuses the module about
        // to compute, so the live set is at most max(max_live, that module) — prefetch is what the cap trims.
        long live = Math.Min(tile + ahead, Math.Max(tile, s.MaxLiveParameters));
        return new ParameterWorkingSet
        {
            Tile = tile,
            Prefetched = live - tile,
            GradientBuckets = 3 * tile,
            Persistent = PersistentElements(m, PersistenceThreshold(m, s)),
        };
    }

    /// <summary><c>stage3_prefetch_bucket_size</c> as emitted: the setting, else DeepSpeed's default while prefetching is on.</summary>
    public static long PrefetchBucket(ModelSpec m, TrainingSettings s) =>
        s.PrefetchBucketSize ?? (s.PrefetchDepth > 0 ? DeepSpeedPrefetchBucket : 0);

    /// <summary><c>stage3_param_persistence_threshold</c> as emitted: the setting, else 10 × hidden.</summary>
    public static long PersistenceThreshold(ModelSpec m, TrainingSettings s) => s.ParamPersistenceThreshold ?? 10L * m.HiddenSize;

    /// <summary>
    /// The largest module after tiling: each layer's weight matrices split into <paramref name="tilingFactor"/> tiles
    /// (the paper's tiled linear: <c>deepspeed.zero.TiledLinear</c>); embeddings and the head are not tiled.
    /// </summary>
    public static long LargestTile(ModelSpec m, int tilingFactor)
    {
        ArgumentNullException.ThrowIfNull(m);
        int t = Math.Max(1, tilingFactor);
        // Untiled, the largest module is DeepSpeed's own largest_layer_params (its estimator's figure).
        if (t == 1) return DeepSpeed.DeepSpeedModules.LargestModuleParameters(m);
        long h = m.HiddenSize;
        long embedding = (long)m.VocabSize * h;
        long positions = m.Positions == PositionKind.Learned ? (long)m.MaxSeqLen * h : 0;
        long layerMatrix = LargestLayerMatrix(m);
        return Math.Max(Math.Max(embedding, positions), (layerMatrix + t - 1) / t);
    }

    /// <summary>The largest weight matrix of one layer (with its bias): GPT-2's fused QKV, or an FFN projection.</summary>
    public static long LargestLayerMatrix(ModelSpec m)
    {
        long h = m.HiddenSize, f = m.FfnSize, kv = m.KvDim;
        long attention = m.Positions == PositionKind.Learned
            ? h * (h + 2 * kv) + (m.HasQkvBias ? h + 2 * kv : 0)
            : h * h + (m.HasQkvBias ? h : 0);
        long ffn = h * f + (m.HasMlpBias ? f : 0);
        return Math.Max(attention, ffn);
    }

    /// <summary>Elements of the per-layer tensors (biases, norms) at or below <paramref name="threshold"/>, and the final norm's.</summary>
    public static long PersistentElements(ModelSpec m, long threshold)
    {
        long h = m.HiddenSize, f = m.FfnSize, kv = m.KvDim;
        var small = new List<long>();
        int normTensors = m.Norm == NormKind.Layernorm ? 2 : 1;
        for (int i = 0; i < 2 * normTensors; i++) small.Add(h);
        if (m.HasQkvBias) small.Add(m.Positions == PositionKind.Learned ? h + 2 * kv : h);
        if (m.HasAttentionOutputBias) small.Add(h);
        if (m.HasMlpBias)
        {
            small.Add(f);
            small.Add(h);
            if (m.FfnKind == FfnKind.Swiglu) small.Add(f);
        }
        long perLayer = small.Where(x => x <= threshold).Sum();
        long finalNorm = h <= threshold ? normTensors * h : 0;
        return perLayer * m.NumLayers + finalNorm;
    }
}
