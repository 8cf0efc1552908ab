using AiOs.Planner.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Model;

/// <summary>The stateless pieces of a decoder layer: norms, linear layers with optional bias, rotary positions.</summary>
internal static class TransformerOps
{
    public const double NormEpsilon = 1e-5;
    public const double RotaryBase = 10000.0;

    /// <summary>LayerNorm (weight and bias) or RMSNorm (weight; computed in fp32 as Llama does).</summary>
    public static Tensor Norm(Tensor x, NormKind kind, FlatParameters p, string name)
    {
        if (kind == NormKind.Layernorm)
            return F.layer_norm(x, [x.shape[^1]], p[name + ".weight"], p[name + ".bias"], NormEpsilon);
        using var scope = NewDisposeScope();
        Tensor x32 = x.to(ScalarType.Float32);
        Tensor normed = x32 * (x32.pow(2).mean([-1L], keepdim: true) + NormEpsilon).rsqrt();
        return (normed.to(x.dtype) * p[name + ".weight"]).MoveToOuterDisposeScope();
    }

    /// <summary>x·Wᵀ (+ b when the layout has a bias).</summary>
    public static Tensor Linear(Tensor x, FlatParameters p, string name) =>
        F.linear(x, p[name + ".weight"], p.Optional(name + ".bias"));

    /// <summary>
    /// Rotates query or key heads [B, heads, T, D] by position (the half-split convention of Llama):
    /// x·cos + rotate_half(x)·sin, with angle t / base^(2i/D).
    /// </summary>
    public static Tensor Rotary(Tensor x)
    {
        using var scope = NewDisposeScope();
        long t = x.shape[2], d = x.shape[3];
        Tensor inv = pow(RotaryBase, -arange(0, d, 2, ScalarType.Float32, x.device) / d);
        Tensor angles = outer(arange(0, t, 1, ScalarType.Float32, x.device), inv);
        Tensor both = cat([angles, angles], -1);
        Tensor cos = both.cos().to(x.dtype), sin = both.sin().to(x.dtype);
        Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);
        Tensor rotated = cat([-x2, x1], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}
