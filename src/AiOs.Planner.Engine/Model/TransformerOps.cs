using AiOs.Planner.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// The stateless pieces of a decoder layer: norms, linear layers with optional bias, the GELU, rotary positions.
/// The model description supplies their constants (norm ε, GELU variant, rotary base and scaling), so every
/// executor, which builds its layers from these ops, computes the same function as the original model.
/// </summary>
internal static class TransformerOps
{
    /// <summary>LayerNorm (weight and bias) or RMSNorm (weight; computed in fp32 as Llama does), with the description's ε.</summary>
    public static Tensor Norm(Tensor x, ModelSpec spec, FlatParameters p, string name)
    {
        if (spec.Norm == NormKind.Layernorm)
            return F.layer_norm(x, [spec.HiddenSize], p[name + ".weight"], p[name + ".bias"], spec.NormEps);
        using var scope = NewDisposeScope();
        Tensor x32 = x.to(ScalarType.Float32);
        // Scalars held by this frame across the calls (Native.KeptScalars says why).
        using Scalar two = 2, eps = spec.NormEps;
        Tensor normed = x32 * (x32.pow(two).mean([-1L], keepdim: true) + eps).rsqrt();
        return (normed.to(x.dtype) * p[name + ".weight"]).MoveToOuterDisposeScope();
    }

    /// <summary>x·Wᵀ (+ b when the layout has a bias): on rows [tokens, in] libtorch's <c>addmm</c>, the bias added by the product (<see cref="DecoderLayer.forward"/> says why).</summary>
    public static Tensor Linear(Tensor x, FlatParameters p, string name) =>
        F.linear(x, p[name + ".weight"], p.Optional(name + ".bias"));

    /// <summary>Exact GELU, or the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (PyTorch's approximate="tanh").</summary>
    public static Tensor Gelu(Tensor x, ActivationKind kind) => kind switch
    {
        ActivationKind.Gelu => F.gelu(x),
        ActivationKind.GeluTanh => F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        _ => throw new NotSupportedException($"Activation {kind} is not supported by the engine."),
    };

    /// <summary>
    /// The rotary inverse frequencies [D/2] in fp32: θ^(−2i/D) for pair i, then rescaled by the description's
    /// <see cref="ModelSpec.RopeScaling"/> as Hugging Face's <c>_compute_llama3_parameters</c> does.
    /// </summary>
    public static Tensor InverseFrequencies(ModelSpec spec, long headDim, Device device)
    {
        using var scope = NewDisposeScope();
        Tensor inv = pow(spec.RopeTheta, -arange(0, headDim, 2, ScalarType.Float32, device) / headDim);
        if (spec.RopeScaling is { RopeType: RopeScalingKind.Llama3 } s)
            inv = Llama3Scaled(inv, s);
        return inv.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Llama 3.1's scaling: wavelengths λ = 2π / f shorter than L / high_freq_factor keep f, longer than
    /// L / low_freq_factor get f / factor, and those between blend the two by s = (L / λ − low) / (high − low).
    /// </summary>
    private static Tensor Llama3Scaled(Tensor inv, RopeScaling s)
    {
        double old = s.OriginalMaxPositionEmbeddings;
        double lowWavelength = old / s.LowFreqFactor, highWavelength = old / s.HighFreqFactor;
        Tensor wavelength = inv.reciprocal() * (2 * Math.PI);
        Tensor scaled = where(wavelength > lowWavelength, inv / s.Factor, inv);
        Tensor smooth = (wavelength.reciprocal() * old - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        Tensor smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
        Tensor medium = (wavelength >= highWavelength).logical_and(wavelength <= lowWavelength);
        return where(medium, smoothed, scaled);
    }

    /// <summary>
    /// Rotates query or key heads [B, heads, T, D] by position (the half-split convention of Llama):
    /// x·cos + rotate_half(x)·sin, with angle t · <see cref="InverseFrequencies"/>.
    /// </summary>
    public static Tensor Rotary(Tensor x, ModelSpec spec)
    {
        using var scope = NewDisposeScope();
        long d = x.shape[3];
        var (cos, sin) = RotaryTables(spec, x.shape[2], d, x.device, x.dtype);
        Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);
        Tensor rotated = cat([-x2, x1], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The cos and sin tables [T, D] of <see cref="Rotary"/> in <paramref name="dtype"/>, made once per shape, device and rotary
    /// constants and kept for the process: they depend on nothing else, and making them took about fifteen small kernels and
    /// host allocations for q and again for k in every layer's forward, recompute and backward (a resident llama-3.2-3b step at
    /// micro-batch 1 is launch-bound). The values are the ones each call computed before, bit for bit.
    /// </summary>
    internal static (Tensor Cos, Tensor Sin) RotaryTables(ModelSpec spec, long t, long d, Device device, ScalarType dtype)
    {
        var key = new RotaryKey(spec.RopeTheta, spec.RopeScaling, t, d, device.type, device.index, dtype);
        lock (Tables)
        {
            if (Tables.TryGetValue(key, out var tables)) return tables;
            using var scope = NewDisposeScope();
            Tensor angles = outer(arange(0, t, 1, ScalarType.Float32, device), InverseFrequencies(spec, d, device));
            Tensor both = cat([angles, angles], -1);
            Tensor cos = both.cos().to(dtype), sin = both.sin().to(dtype);
            // Outside every dispose scope: the tables outlive the call that made them.
            tables = (cos.DetachFromDisposeScope(), sin.DetachFromDisposeScope());
            Tables[key] = tables;
            return tables;
        }
    }

    private readonly record struct RotaryKey(double Theta, RopeScaling? Scaling, long T, long D, DeviceType DeviceType, int DeviceIndex, ScalarType DType);

    private static readonly Dictionary<RotaryKey, (Tensor Cos, Tensor Sin)> Tables = [];
}
