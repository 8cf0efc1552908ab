using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// A whole decoder-only transformer held at once (every unit resident): the reference the offloaded
/// engine is checked against, and the simplest way to run a small model. Units are numbered as the
/// engine numbers them: layers 0 … L−1, then the outer block as unit L.
/// </summary>
public sealed class GptModel : nn.Module<Tensor, Tensor>
{
    private readonly List<DecoderLayer> _layers = [];

    /// <summary>Builds the model in <paramref name="dtype"/> on <paramref name="device"/>, all parameters zero.</summary>
    public GptModel(ModelSpec spec, ScalarType dtype, Device device) : base("gpt")
    {
        Spec = spec;
        var layerLayout = ParameterLayout.ForLayer(spec);
        for (int i = 0; i < spec.NumLayers; i++)
        {
            var layer = new DecoderLayer(spec, new FlatParameters(layerLayout, dtype, device));
            _layers.Add(layer);
            register_module($"layer{i}", layer);
        }
        Outer = new OuterBlock(spec, new FlatParameters(ParameterLayout.ForOuter(spec), dtype, device));
        register_module("outer", Outer);
    }

    /// <summary>The model description.</summary>
    public ModelSpec Spec { get; }

    /// <summary>Embeddings, final norm and head.</summary>
    public OuterBlock Outer { get; }

    /// <summary>The decoder layers in order.</summary>
    public IReadOnlyList<DecoderLayer> Layers => _layers;

    /// <summary>The flat parameters of unit <paramref name="unit"/> (layer index, or L for the outer block).</summary>
    public FlatParameters Unit(int unit) => unit == Spec.NumLayers ? Outer.Parameters : _layers[unit].Parameters;

    /// <summary>Number of units: layers plus the outer block.</summary>
    public int UnitCount => Spec.NumLayers + 1;

    /// <summary>Token ids [batch, seq] to final hidden states [batch, seq, hidden].</summary>
    public override Tensor forward(Tensor tokens) => Hidden(tokens, null);

    /// <summary>As <see cref="forward"/>, re-seeding dropout before each unit when <paramref name="replay"/> is given.</summary>
    public Tensor Hidden(Tensor tokens, DropoutReplay? replay)
    {
        using var scope = NewDisposeScope();
        replay?.Before(-1, tokens.device);
        Tensor x = Outer.forward(tokens);
        for (int i = 0; i < _layers.Count; i++)
        {
            replay?.Before(i, tokens.device);
            x = _layers[i].forward(x);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Loss of one micro-batch divided by <paramref name="divisor"/>.</summary>
    public Tensor Loss(Tensor tokens, Tensor targets, double divisor, DropoutReplay? replay = null)
    {
        using var scope = NewDisposeScope();
        return Outer.Loss(Hidden(tokens, replay), targets, divisor).MoveToOuterDisposeScope();
    }

    /// <summary>Releases every unit's buffers.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (DecoderLayer layer in _layers) layer.Parameters.Dispose();
            Outer.Parameters.Dispose();
        }
        base.Dispose(disposing);
    }
}
