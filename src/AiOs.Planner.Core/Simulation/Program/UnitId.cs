namespace AiOs.Planner.Simulation.Program;

/// <summary>What a <see cref="UnitId"/> names.</summary>
public enum UnitKind
{
    /// <summary>The token (and learned position) embedding.</summary>
    Embedding,
    /// <summary>One decoder layer.</summary>
    Layer,
    /// <summary>The final norm, the output matrix and the loss.</summary>
    Head,
    /// <summary>The engine's grouping of embedding, final norm and head: fetched once per micro-batch, used at both of its ends.</summary>
    Outer,
    /// <summary>The model's flat parameter partition as a whole (DeepSpeed's sub-groups run across it).</summary>
    Model,
}

/// <summary>
/// A unit of work and of parameter movement in a step program. <see cref="Number"/> is the number traces and
/// timelines print: −1 the embedding (and the outer block, fetched for the embedding first), 0…L−1 the
/// layers, L the head; −1 the flat model.
/// </summary>
public readonly record struct UnitId(UnitKind Kind, int Number)
{
    /// <summary>The embedding (number −1).</summary>
    public static UnitId Embedding => new(UnitKind.Embedding, -1);

    /// <summary>The outer block: embedding, final norm and head as one unit (number −1).</summary>
    public static UnitId Outer => new(UnitKind.Outer, -1);

    /// <summary>The flat model partition (number −1).</summary>
    public static UnitId Model => new(UnitKind.Model, -1);

    /// <summary>Decoder layer <paramref name="index"/>.</summary>
    public static UnitId Layer(int index) => new(UnitKind.Layer, index);

    /// <summary>The head of a model with <paramref name="numLayers"/> layers (number L).</summary>
    public static UnitId Head(int numLayers) => new(UnitKind.Head, numLayers);

    /// <summary>The unit of program number <paramref name="number"/> (−1 embedding, 0…L−1 layers, L head) with separate embedding and head.</summary>
    public static UnitId OfNumber(int number, int numLayers) =>
        number < 0 ? Embedding : number >= numLayers ? Head(numLayers) : Layer(number);

    public override string ToString() => Kind switch
    {
        UnitKind.Layer => $"layer {Number}",
        UnitKind.Outer => "outer block",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>A run of elements the optimizer updates and swaps as a whole: sub-group <paramref name="Index"/> of <paramref name="Unit"/>, elements [Offset, Offset + Elements).</summary>
/// <param name="Unit">The unit whose elements it covers (<see cref="UnitId.Model"/> when sub-groups run across the flat model).</param>
/// <param name="Index">Position among the unit's sub-groups.</param>
/// <param name="Offset">First element within the unit (this GPU's share of it).</param>
/// <param name="Elements">Element count, at most sub_group_size.</param>
public readonly record struct SubGroupRef(UnitId Unit, int Index, long Offset, long Elements)
{
    /// <summary>
    /// Its optimizer state stays in host RAM although the optimizer lives on NVMe (<see cref="Settings.OptimizerPlacement"/>
    /// under an optimizer RAM budget): it is updated in place, with no state read or write.
    /// </summary>
    public bool KeptInRam { get; init; }
}
