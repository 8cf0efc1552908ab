using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>How the resident trainer takes each unit's Σg² before the update (the layer-by-layer trainer's gradient store takes <see cref="GradientNorms.UnitSum"/> on a GPU, whatever this says).</summary>
public enum GradientNormPath
{
    /// <summary>
    /// Squares summed in fp64 (exact squares; ~34 bytes per bf16 parameter moved on a GPU, where it takes an fp64 copy of each
    /// gradient). fp32 and bf16 gradients in host memory are read where they lie, with no copy.
    /// </summary>
    Fp64Copy,

    /// <summary>
    /// fp32 sums of squares of 1024-element rows, summed in fp64: on a GPU by one kernel per unit that reads the gradient where
    /// it lies (<see cref="SumOfSquaresKernel"/>), elsewhere, or where the kernel cannot run, by tensor ops (row norms of bf16/fp16
    /// chunks cast to fp32, squared in fp64).
    /// </summary>
    Fp32Reduction,
}

/// <summary>
/// Each unit's Σg², fetched from the device with one synchronisation. fp64 accumulation of exact squares stays the CPU's path
/// (the CPU trainers are compared bit for bit), read from the gradient where it lies; on a GPU its fp64 copy moved ~34 bytes per bf16 parameter (read 2, write and read an fp64
/// copy, write and read its square: ~53 GB per gpt2-xl step, about half of the optimizer span), so a GPU takes fp32 sums
/// of rows' squares instead, by one kernel per unit (2 bytes per bf16 parameter). <c>AIOS_GRAD_NORM=fp64</c> restores the fp64
/// copy on the GPU, for an A/B of the optimizer phase; <c>AIOS_NORM_KERNEL=0</c> the tensor ops of the fp32 path.
/// </summary>
internal static class GradientNorms
{
    /// <summary>The environment variable that picks the path (<c>fp64</c> or <c>fp32</c>; unset: fp32 on a GPU, fp64 on the CPU).</summary>
    public const string Variable = "AIOS_GRAD_NORM";

    /// <summary>
    /// Elements per fp32 chunk of a bf16 or fp16 gradient: its fp32 copy (32 MiB) is the only temporary, freed before the
    /// next chunk's is made (the caching allocator hands the same block back; it may partly stay in an H100's 50 MB L2),
    /// and gpt2-xl's 1.56 G parameters take ~200 chunks, a few hundred launches rather than one per megabyte. Not tuned on a GPU.
    /// </summary>
    public const long ChunkElements = 1L << 23;

    /// <summary>
    /// The path for <paramref name="device"/> given the variable's value <paramref name="request"/>: unset or empty, the fp64
    /// copy on the CPU and the fp32 reduction elsewhere; <c>fp64</c> or <c>fp32</c> force one.
    /// </summary>
    /// <exception cref="ArgumentException">Any other value.</exception>
    public static GradientNormPath PathFor(DeviceType device, string? request) => request?.Trim().ToLowerInvariant() switch
    {
        null or "" => device == DeviceType.CPU ? GradientNormPath.Fp64Copy : GradientNormPath.Fp32Reduction,
        "fp64" => GradientNormPath.Fp64Copy,
        "fp32" => GradientNormPath.Fp32Reduction,
        _ => throw new ArgumentException(
            $"{Variable}={request} is not a gradient-norm path: set {Variable}=fp64 (fp64 copies of the gradients, the old way) " +
            $"or {Variable}=fp32 (fp32 norms of 1024-element rows, the GPU's default), or unset it.", nameof(request)),
    };

    /// <summary>Σg² of each of <paramref name="gradients"/> by <paramref name="path"/>.</summary>
    public static double[] SumsOfSquares(Tensor[] gradients, GradientNormPath path) => SumsOfSquares(gradients, path, null, out _);

    /// <summary>
    /// Σg² of each of <paramref name="gradients"/> by <paramref name="path"/>, and in the same copy to the host the fp64
    /// value <paramref name="alongside"/> (one element, on the gradients' device; the resident trainer's summed losses), so
    /// the host waits once, after every reduction is queued. <paramref name="alongsideValue"/> is NaN without one.
    /// </summary>
    public static double[] SumsOfSquares(Tensor[] gradients, GradientNormPath path, Tensor? alongside, out double alongsideValue) =>
        path == GradientNormPath.Fp64Copy ? Fp64Along(gradients, alongside, out alongsideValue) : Fp32Along(gradients, ChunkElements, alongside, out alongsideValue);

    /// <summary>
    /// <paramref name="deviceSums"/> (fp64 scalars or vectors) and <paramref name="alongside"/> copied to the host together: one wait.
    /// <paramref name="alongsideValue"/> is the last element when <paramref name="alongside"/> is given, NaN otherwise.
    /// </summary>
    private static double[] Fetch(Tensor[] deviceSums, Tensor? alongside, out double alongsideValue)
    {
        var parts = new List<Tensor>(deviceSums.Length + 1);
        foreach (Tensor t in deviceSums) parts.Add(t.reshape(-1));
        // On the sums' device (the resident trainer's losses are on its gradients'), so one copy brings all back.
        if (alongside is not null) parts.Add(parts.Count > 0 ? alongside.reshape(-1).to(ScalarType.Float64, parts[0].device) : alongside.reshape(-1).to(ScalarType.Float64));
        if (parts.Count == 0)
        {
            alongsideValue = double.NaN;
            return [];
        }
        double[] all = cat(parts, 0).cpu().data<double>().ToArray();
        alongsideValue = alongside is null ? double.NaN : all[^1];
        return alongside is null ? all : all[..^1];
    }

    /// <summary>
    /// Σg² in fp64: a CPU gradient read where it lies (<see cref="HostSum"/>), others on the device, fetched with one
    /// synchronisation. Each unit's fp64 temporaries are freed before the next
    /// unit's are made: held to the end they took 16 bytes per parameter (23 GiB for gpt2-xl, the resident engine's device
    /// peak on the H200 until 2026-12-05).
    /// </summary>
    public static double[] Fp64(Tensor[] gradients) => Fp64Along(gradients, null, out _);

    private static double[] Fp64Along(Tensor[] gradients, Tensor? alongside, out double alongsideValue)
    {
        var sums = new double[gradients.Length];
        var onDevice = new List<int>();
        for (int u = 0; u < gradients.Length; u++)
            if (HostSum(gradients[u]) is { } host) sums[u] = host;
            else onDevice.Add(u);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = new Tensor[onDevice.Count];
        for (int i = 0; i < device.Length; i++)
            using (var unit = NewDisposeScope())
                device[i] = Fp64Sum(gradients[onDevice[i]]).MoveToOuterDisposeScope();
        double[] fetched = Fetch(device, alongside, out alongsideValue);
        for (int i = 0; i < fetched.Length; i++) sums[onDevice[i]] = fetched[i];
        return sums;
    }

    /// <summary>
    /// Σg² from fp32 sums over rows of <see cref="RowElements"/>. On a GPU every unit goes through <see cref="SumOfSquaresKernel"/>
    /// (one launch each into one buffer of partials, one sum over it; <paramref name="chunkElements"/> is then unused). The tensor
    /// path, elsewhere or without the kernel, takes fp32 L2 norms of the rows (<c>linalg.norm</c> over the rows: the squares are
    /// summed in fp32 inside the reduction kernel, which reads its input once): an fp32 gradient whole, a bf16 or fp16 one in
    /// chunks of <paramref name="chunkElements"/> cast to fp32 (TorchSharp's norms take no dtype, and a bf16
    /// result would keep 8 bits). The row norms (4 bytes per 1024 parameters) are squared and summed in fp64 on the device,
    /// so fp32 rounding accumulates over one row only, however large the unit; every unit's sum comes back with one
    /// synchronisation.
    /// </summary>
    /// <remarks>
    /// Non-finite gradients stay non-finite: a NaN makes its row's norm NaN, an infinity makes it +inf. Spurious overflow: an
    /// fp16 value is at most 65504 whatever the loss scale (the scaled gradient is stored in fp16), so a row's fp32 sum is at
    /// most 65504² · 1024 ≈ 4.4e12, far below fp32's 3.4e38, and the rows are summed in fp64: an fp16 unit's +inf always
    /// means an infinite gradient, which is what the loss scaler must see. A bf16 or fp32 gradient can hold finite values whose
    /// squares overflow fp32 (|g| above ~1.8e19); a unit of those dtypes whose sum comes back +inf is therefore taken again by
    /// <see cref="Fp64"/> (a second synchronisation, only on such a step), so the answer is inf only if the fp64 sum is.
    /// </remarks>
    public static double[] Fp32(Tensor[] gradients, long chunkElements = ChunkElements) => Fp32Along(gradients, chunkElements, null, out _);

    private static double[] Fp32Along(Tensor[] gradients, long chunkElements, Tensor? alongside, out double alongsideValue)
    {
        if (chunkElements < 1) throw new ArgumentOutOfRangeException(nameof(chunkElements), "A chunk holds at least one element.");
        double[] sums;
        using (var scope = NewDisposeScope())
        using (var _ = no_grad())
        {
            // On a GPU, every unit by the kernel into one buffer and one sum over it (SumOfSquaresKernel.Sums).
            if (gradients.Length > 0 && Array.TrueForAll(gradients, SumOfSquaresKernel.Takes)
                && SumOfSquaresKernel.TryGet(gradients[0].device) is { } kernel)
                sums = Fetch([kernel.Sums(gradients)], alongside, out alongsideValue);
            else
            {
                var units = new Tensor[gradients.Length];
                for (int u = 0; u < gradients.Length; u++)
                    using (var unit = NewDisposeScope())
                        units[u] = UnitSum(gradients[u], chunkElements).MoveToOuterDisposeScope();
                sums = Fetch(units, alongside, out alongsideValue);
            }
        }
        int[] again = [.. Enumerable.Range(0, gradients.Length)
            .Where(u => double.IsPositiveInfinity(sums[u]) && MaySpuriouslyOverflow(gradients[u].dtype))];
        if (again.Length > 0)
        {
            double[] exact = Fp64([.. again.Select(u => gradients[u])]);
            for (int i = 0; i < again.Length; i++) sums[again[i]] = exact[i];
        }
        return sums;
    }

    /// <summary>Elements per row whose norm is taken in fp32; the rows' squares are summed in fp64.</summary>
    public const long RowElements = 1024;

    /// <summary>Whether a finite gradient of <paramref name="type"/> can square past fp32's range (so an fp32 +inf may be spurious).</summary>
    internal static bool MaySpuriouslyOverflow(ScalarType type) => type != ScalarType.Float16;

    /// <summary>
    /// One unit's Σg² as an fp64 scalar on its device, from the fp32 sums of squares of its rows: on a GPU by one kernel that
    /// reads the gradient once (<see cref="SumOfSquaresKernel"/>), elsewhere, or where that kernel cannot run, by the tensor ops
    /// (<see cref="TensorUnitSum"/>).
    /// </summary>
    internal static Tensor UnitSum(Tensor gradient, long chunkElements = ChunkElements)
    {
        if (gradient.numel() > 0 && SumOfSquaresKernel.Takes(gradient) && SumOfSquaresKernel.TryGet(gradient.device) is { } kernel)
            return kernel.Sum(gradient);
        return TensorUnitSum(gradient, chunkElements);
    }

    /// <summary>One unit's Σg² as an fp64 scalar on its device, from the fp32 norms of its rows by tensor ops.</summary>
    internal static Tensor TensorUnitSum(Tensor gradient, long chunkElements = ChunkElements)
    {
        Tensor flat = gradient.reshape(-1);
        long n = flat.numel();
        if (n == 0) return zeros([], ScalarType.Float64, gradient.device);
        // fp64 is no training precision (nothing to save); its own exact sum.
        if (gradient.dtype == ScalarType.Float64) return Fp64Sum(flat);
        var norms = new List<Tensor>();
        if (gradient.dtype == ScalarType.Float32) norms.AddRange(RowNorms(flat));
        else
            for (long start = 0; start < n; start += chunkElements)
                using (var chunk = NewDisposeScope())
                    foreach (Tensor rows in RowNorms(flat.narrow(0, start, Math.Min(chunkElements, n - start)).to(ScalarType.Float32)))
                        norms.Add(rows.MoveToOuterDisposeScope());
        return cat(norms).to(ScalarType.Float64).square().sum();
    }

    /// <summary>The fp32 norms of a 1-D fp32 tensor's rows of <see cref="RowElements"/>, and of its shorter tail.</summary>
    private static IEnumerable<Tensor> RowNorms(Tensor flat32)
    {
        long n = flat32.numel(), rows = n / RowElements, whole = rows * RowElements;
        // linalg.norm with no order (the 2-norm of each row) rather than vector_norm: TorchSharp 0.107 makes vector_norm's
        // order a Scalar it does not keep alive across the native call, and a collection in between freed it ("Unknown
        // scalar type", once in CI, 2026-12-05); this overload passes no Scalar.
        if (rows > 0) yield return linalg.norm(flat32.narrow(0, 0, whole).view(rows, RowElements), [1], false);
        if (n > whole) yield return linalg.norm(flat32.narrow(0, whole, n - whole), [0], false).unsqueeze(0);
    }

    private static Tensor Fp64Sum(Tensor gradient) => gradient.to(ScalarType.Float64).square().sum();

    /// <summary>
    /// Σg² of a contiguous fp32 or bf16 gradient in host memory, read where it lies (<see cref="SpanMath.SumOfSquares"/>,
    /// fp64 lanes in fixed chunks, as the layer-by-layer trainer takes its norms on a CPU or with accumulation); null for any other tensor. The fp64 copy
    /// and its square took 16 bytes per parameter of the unit at a time, and the CPU's resident step's host peak grew by
    /// 2.5 GiB over the update (gpt2-medium, 2026-12-05), which the plan does not hold.
    /// </summary>
    private static double? HostSum(Tensor gradient)
    {
        long n = gradient.numel();
        if (gradient.device_type != DeviceType.CPU || !gradient.is_contiguous() || n > int.MaxValue
            || gradient.dtype is not (ScalarType.Float32 or ScalarType.BFloat16)) return null;
        if (n == 0) return 0;
        // TorchSharp's bytes of a CPU tensor are its memory itself.
        return gradient.dtype == ScalarType.Float32
            ? SpanMath.SumOfSquares(MemoryMarshal.Cast<byte, float>(gradient.bytes))
            : SpanMath.SumOfSquaresBf16(MemoryMarshal.Cast<byte, ushort>(gradient.bytes));
    }
}
