using AiOs.Planner.Descriptions;
using AiOs.Planner.Learning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// A machine or cluster: <see cref="Nodes"/> identical nodes, each with <see cref="GpusPerNode"/> GPUs,
/// a CPU with RAM, and NVMe drives. Every figure carries its provenance (<see cref="Figure"/>).
/// </summary>
public sealed record HardwareProfile
{
    public required string Name { get; init; }
    public string? Description { get; init; }
    /// <summary>Provenance of every bare number in the file.</summary>
    public FigureSource Source { get; init; } = FigureSource.Datasheet;
    /// <summary>When the profile was written or last calibrated (ISO 8601).</summary>
    public string? Date { get; init; }
    public int Nodes { get; init; } = 1;
    /// <summary>GPUs in each node; 0 for a CPU-only machine.</summary>
    public int GpusPerNode { get; init; }
    public GpuSpec? Gpu { get; init; }
    public HostLinkSpec? HostLink { get; init; }
    /// <summary>GPU-to-GPU link inside a node (NVLink or PCIe peer-to-peer), per GPU and direction.</summary>
    public LinkSpec? GpuLink { get; init; }
    /// <summary>Node-to-node network, per node and direction.</summary>
    public LinkSpec? Network { get; init; }
    public required CpuSpec Cpu { get; init; }
    public IReadOnlyList<DriveSpec> Drives { get; init; } = [];
    /// <summary>Facts recorded by calibration (CPU model, kernel, filesystem…), free-form.</summary>
    public IReadOnlyDictionary<string, string>? Machine { get; init; }
    /// <summary>A correction of the simulator's phase times learned from past runs (<c>aios learn</c>); null when none.</summary>
    public StepCorrectionSpec? Correction { get; init; }

    public int TotalGpus => Nodes * GpusPerNode;
    public bool HasGpu => GpusPerNode > 0 && Gpu is not null;

    /// <summary>Provenance of <paramref name="figure"/>, inheriting the profile's source for bare numbers.</summary>
    public Provenance ProvenanceOf(Figure figure) => figure.Provenance ?? new Provenance(Source, Date);

    /// <summary>Checks every field; throws one error naming each bad field and the source.</summary>
    public HardwareProfile Validated(string source)
    {
        var p = new ValidationProblems(source);
        if (string.IsNullOrWhiteSpace(Name)) p.Add("$.name", "must not be empty");
        p.Positive("$.nodes", Nodes, HardwareBounds.MaxNodes);
        p.InRange("$.gpus_per_node", GpusPerNode, 0, HardwareBounds.MaxGpusPerNode);
        if (GpusPerNode > 0)
        {
            if (Gpu is null) p.Add("$.gpu", "is required when gpus_per_node > 0");
            if (HostLink is null) p.Add("$.host_link", "is required when gpus_per_node > 0");
        }
        if (Nodes > 1 && Network is null) p.Add("$.network", "is required when nodes > 1");
        Gpu?.Validate(p, "$.gpu");
        HostLink?.Validate(p, "$.host_link");
        GpuLink?.Validate(p, "$.gpu_link");
        Network?.Validate(p, "$.network");
        Cpu.Validate(p, "$.cpu");
        if (Drives is null) p.Add("$.drives", "must be a list (write [] for none)");
        else
        {
            p.InRange("$.drives", Drives.Count, 0, HardwareBounds.MaxDrives, " entries");
            for (int i = 0; i < Drives.Count; i++)
            {
                if (Drives[i] is null) p.Add($"$.drives[{i}]", "must be an object, not null");
                else Drives[i].Validate(p, $"$.drives[{i}]");
            }
            double total = Drives.Where(d => d is not null).Sum(d => d.CapacityGb.Value * d.Count);
            if (total > HardwareBounds.MaxNodeDriveCapacityGb)
                p.Add("$.drives", $"hold {total:G} GB together; at most {HardwareBounds.MaxNodeDriveCapacityGb:G} GB per node");
        }
        if (Correction is { } correction) HardwareBounds.ValidateCorrection(p, "$.correction", correction);
        p.ThrowIfAny();
        return this;
    }
}

/// <summary>Figures per training precision (dense, no sparsity).</summary>
public sealed record PerPrecision
{
    public Figure? Fp32 { get; init; }
    public Figure? Tf32 { get; init; }
    public Figure? Bf16 { get; init; }
    public Figure? Fp16 { get; init; }

    /// <summary>The figure for <paramref name="precision"/>; fp32 training uses TF32 tensor cores when listed, as PyTorch can.</summary>
    public Figure? For(Precision precision) => precision switch
    {
        Precision.Bf16 => Bf16 ?? Fp16,
        Precision.Fp16 => Fp16 ?? Bf16,
        _ => Fp32,
    };
}

/// <summary>One GPU model.</summary>
public sealed record GpuSpec
{
    public required string Model { get; init; }
    /// <summary>Memory the driver reports, GiB (nvidia-smi's MiB ÷ 1024).</summary>
    public required Figure MemoryGib { get; init; }
    /// <summary>Datasheet dense peak, TFLOP/s.</summary>
    public required PerPrecision PeakTflops { get; init; }
    /// <summary>Achieved large-matmul rate, TFLOP/s (measured where possible); defaults to 75% of peak.</summary>
    public PerPrecision? MatmulTflops { get; init; }
    /// <summary>Device memory bandwidth, GB/s.</summary>
    public required Figure MemoryBandwidthGbps { get; init; }
    /// <summary>The bundled engine's kernels on this GPU (the <c>aios</c> executor's compute model); null: the PyTorch-fitted defaults.</summary>
    public EngineKernels? EngineKernels { get; init; }
    /// <summary>PyTorch eager's compute constants on this machine (the <c>deepspeed</c> executor's); null: <see cref="Simulation.ComputeModel.Default"/>.</summary>
    public EagerCompute? EagerCompute { get; init; }

    public Bytes Memory => Bytes.FromGiB(MemoryGib.Value);

    /// <summary>Achieved dense matmul rate for <paramref name="precision"/>.</summary>
    public FlopRate MatmulRate(Precision precision) =>
        MatmulTflops?.For(precision) is { } m
            ? FlopRate.FromTflops(m.Value)
            : FlopRate.FromTflops((PeakTflops.For(precision)?.Value ?? PeakTflops.Fp32?.Value ?? 1) * 0.75);

    internal void Validate(ValidationProblems p, string at)
    {
        p.Positive(at + ".memory_gib", MemoryGib.Value, HardwareBounds.MaxGpuMemoryGib, " GiB");
        p.InRange(at + ".memory_bandwidth_gbps", MemoryBandwidthGbps.Value, HardwareBounds.MinMemoryGbps, HardwareBounds.MaxMemoryGbps, " GB/s");
        if (PeakTflops is null || PeakTflops.Fp32 is null && PeakTflops.Bf16 is null && PeakTflops.Fp16 is null)
            p.Add(at + ".peak_tflops", "needs at least one of fp32, bf16, fp16");
        Rates(p, at + ".peak_tflops", PeakTflops);
        Rates(p, at + ".matmul_tflops", MatmulTflops);
        EngineKernels?.Validate(p, at + ".engine_kernels");
        EagerCompute?.Validate(p, at + ".eager_compute");
    }

    private static void Rates(ValidationProblems p, string at, PerPrecision? rates)
    {
        if (rates is null) return;
        foreach (var (name, f) in new[] { ("fp32", rates.Fp32), ("tf32", rates.Tf32), ("bf16", rates.Bf16), ("fp16", rates.Fp16) })
            if (f is not null) p.InRange($"{at}.{name}", f.Value, HardwareBounds.MinGpuTflops, HardwareBounds.MaxGpuTflops, " TFLOP/s");
    }
}

/// <summary>The link between the host and each GPU (PCIe), with the rates copies actually reach.</summary>
public sealed record HostLinkSpec
{
    public int PcieGen { get; init; }
    public int Lanes { get; init; } = 16;
    /// <summary>Host→device from pinned memory, GB/s.</summary>
    public required Figure H2dPinnedGbps { get; init; }
    /// <summary>Device→host into pinned memory, GB/s.</summary>
    public required Figure D2hPinnedGbps { get; init; }
    /// <summary>Host→device from pageable memory, GB/s.</summary>
    public required Figure H2dPageableGbps { get; init; }
    /// <summary>Device→host into pageable memory, GB/s.</summary>
    public required Figure D2hPageableGbps { get; init; }
    /// <summary>GPUs that share one upstream link (a PCIe switch or root port); their copies share its bandwidth.</summary>
    public int GpusPerRoot { get; init; } = 1;
    /// <summary>
    /// Host→device from pinned memory while CPU Adam runs on every core, GB/s: the copy engine reads host memory that the
    /// update's streams are loading (the overlapped and delayed schedules' transfers). null: not measured; such transfers
    /// are priced at <see cref="H2dPinnedGbps"/>.
    /// </summary>
    public Figure? H2dPinnedBesideCpuUpdateGbps { get; init; }
    /// <summary>Device→host into pinned memory while CPU Adam runs on every core, GB/s (see <see cref="H2dPinnedBesideCpuUpdateGbps"/>).</summary>
    public Figure? D2hPinnedBesideCpuUpdateGbps { get; init; }
    /// <summary>
    /// Bytes of its own memory traffic CPU Adam loses per byte the copy engines move to or from pinned host memory beside it
    /// (0: the update keeps its pace; 1: every copied byte displaces one of the update's, as when the update runs at the
    /// memory's roof). <c>calibrate-gpu</c> measures the update's rate alone and while pinned copies loop:
    /// (alone − beside) × 28 B ÷ the copies' bytes per second. null: not measured, the update is priced at its rate alone.
    /// </summary>
    public Figure? CpuUpdateBytesLostPerCopiedByte { get; init; }

    /// <summary>The largest <see cref="CpuUpdateBytesLostPerCopiedByte"/> a profile may state (validated; the probe writes none above it).</summary>
    public const double MaxCpuUpdateBytesLostPerCopiedByte = 10;

    /// <summary>
    /// The fraction of its rate the engine's gradient-sum pass (<see cref="CpuSpec.HostAddGbps"/>: a later micro-batch's bf16
    /// gradients added into the fp32 sums) keeps while pinned copies loop both ways beside it, as the parameters' uploads and
    /// the gradients' downloads run beside the adds of an accumulating step. <c>calibrate-gpu</c> measures the pass alone and
    /// beside the copies in alternating windows (beside ÷ alone, at most 1). null: not measured, the adds are priced at
    /// <see cref="CpuSpec.HostAddGbps"/> alone.
    /// </summary>
    public Figure? HostAddShareBesideCopies { get; init; }

    /// <summary>The smallest <see cref="HostAddShareBesideCopies"/> a profile may state (validated; the probe writes none below it).</summary>
    public const double MinHostAddShareBesideCopies = 0.05;

    public Bandwidth H2d(bool pinned) => Bandwidth.FromGBps(pinned ? H2dPinnedGbps.Value : H2dPageableGbps.Value);
    public Bandwidth D2h(bool pinned) => Bandwidth.FromGBps(pinned ? D2hPinnedGbps.Value : D2hPageableGbps.Value);

    /// <summary>
    /// The fraction of its rate a host→device copy keeps beside the CPU update (measured beside ÷ alone, at most 1); 1 where
    /// not measured.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double H2dShareBesideCpuUpdate => Share(H2dPinnedBesideCpuUpdateGbps, H2dPinnedGbps);
    /// <summary>As <see cref="H2dShareBesideCpuUpdate"/>, device→host.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double D2hShareBesideCpuUpdate => Share(D2hPinnedBesideCpuUpdateGbps, D2hPinnedGbps);

    private static double Share(Figure? beside, Figure alone) => beside is { } b ? Math.Min(1, b.Value / alone.Value) : 1;

    internal void Validate(ValidationProblems p, string at)
    {
        p.InRange(at + ".pcie_gen", PcieGen, 0, HardwareBounds.MaxPcieGen);
        p.InRange(at + ".lanes", Lanes, 0, HardwareBounds.MaxLanes);
        foreach (var (name, f) in new[] { ("h2d_pinned_gbps", H2dPinnedGbps), ("d2h_pinned_gbps", D2hPinnedGbps), ("h2d_pageable_gbps", H2dPageableGbps), ("d2h_pageable_gbps", D2hPageableGbps) })
            p.InRange($"{at}.{name}", f.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxLinkGbps, " GB/s");
        foreach (var (name, f) in new[] { ("h2d_pinned_beside_cpu_update_gbps", H2dPinnedBesideCpuUpdateGbps), ("d2h_pinned_beside_cpu_update_gbps", D2hPinnedBesideCpuUpdateGbps) })
            if (f is not null) p.InRange($"{at}.{name}", f.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxLinkGbps, " GB/s");
        if (CpuUpdateBytesLostPerCopiedByte is { } lost) p.InRange(at + ".cpu_update_bytes_lost_per_copied_byte", lost.Value, 0.0, MaxCpuUpdateBytesLostPerCopiedByte);
        if (HostAddShareBesideCopies is { } share) p.InRange(at + ".host_add_share_beside_copies", share.Value, MinHostAddShareBesideCopies, 1.0);
        p.Positive(at + ".gpus_per_root", GpusPerRoot, HardwareBounds.MaxGpusPerNode);
    }
}

/// <summary>A point-to-point or network link: achieved bandwidth per direction and a latency.</summary>
public sealed record LinkSpec
{
    /// <summary>nvlink, pcie, infiniband, ethernet…</summary>
    public string Kind { get; init; } = "";
    public required Figure Gbps { get; init; }
    public Figure? LatencyUs { get; init; }

    public Bandwidth Rate => Bandwidth.FromGBps(Gbps.Value);

    internal void Validate(ValidationProblems p, string at)
    {
        p.InRange(at + ".gbps", Gbps.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxLinkGbps, " GB/s");
        if (LatencyUs is { } latency) p.NonNegative(at + ".latency_us", latency.Value, HardwareBounds.MaxLatencyUs, " µs");
    }
}

/// <summary>Which pass the engine's CPU Adam runs over fp32 state, by what it reads and writes beside master, m and v.</summary>
public enum CpuUpdatePass
{
    /// <summary>
    /// fp32 gradients read, nothing else written: fp32 training and DeepSpeed's CPU Adam. The engine's bf16 updates of fp32 sums
    /// or swapped sub-groups also write the bf16 copy in the pass (2 B more) and take this rate as an approximation.
    /// </summary>
    Fp32Gradients,
    /// <summary>The engine's bf16 update: bf16 gradients read, the bf16 copy written.</summary>
    Bf16Gradients,
    /// <summary>The engine's fp16 update: fp32 gradient sums read, the fp16 copy written.</summary>
    Fp16Copy,
}

/// <summary>The host CPU and its memory.</summary>
public sealed record CpuSpec
{
    public string Model { get; init; } = "";
    public required int Cores { get; init; }
    public required Figure RamGib { get; init; }
    /// <summary>Achievable memory-copy bandwidth, GB/s.</summary>
    public required Figure MemoryBandwidthGbps { get; init; }
    /// <summary>Parameters per second that CPU Adam updates with fp32 master weights, all cores.</summary>
    public required Figure AdamParamsPerS { get; init; }
    /// <summary>
    /// Parameters per second that the engine's CPU Adam updates in bf16 training with its state in RAM (bf16 gradients read,
    /// bf16 copy written: 28 B per parameter, per sub-group), all cores; null (profiles calibrated before it): <see cref="AdamParamsPerS"/>.
    /// </summary>
    public Figure? AdamBf16ParamsPerS { get; init; }
    /// <summary>
    /// Parameters per second that the engine's CPU Adam updates in fp16 training with fp32 state (fp32 gradient sums read,
    /// fp16 copy written: 30 B per parameter, per sub-group), all cores; null (profiles calibrated before it):
    /// <see cref="DefaultAdamFp16Ratio"/> × <see cref="AdamParamsPerS"/>.
    /// </summary>
    public Figure? AdamFp16ParamsPerS { get; init; }
    /// <summary>Parameters per second that CPU Adam updates with block-wise 8-bit moments, all cores; null: <see cref="DefaultAdam8Ratio"/> × the fp32 rate.</summary>
    public Figure? Adam8ParamsPerS { get; init; }
    /// <summary>
    /// Seconds every CPU optimizer update call costs whatever its size (the threads' hand-off and set-up): the engine makes one
    /// call per sub-group (at most a unit), so a step of k calls pays k times this on top of its parameters over the rate.
    /// Fitted by <c>aios calibrate</c> as <c>t = a + b·n</c> over calls of 16 K to 16 M parameters (issue 13); null: <see cref="DefaultOptimizerCallOverheadS"/>.
    /// </summary>
    public Figure? OptimizerCallOverheadS { get; init; }
    /// <summary>
    /// Bytes of memory traffic per second the engine's gradient-sum pass moves on every core (<see cref="Optim.GradientSums.AddBf16"/>:
    /// read the fp32 sum and the bf16 gradients, write the sum; 10 B per element), GB/s: what a later micro-batch's download adds
    /// on the host. Null (profiles calibrated before it): the memory-copy rate (<see cref="MemoryBandwidthGbps"/>), which
    /// counts bytes copied, not moved, and priced that pass 1.4–1.5× slow on the H100 VMs (2026-12-06).
    /// </summary>
    public Figure? HostAddGbps { get; init; }
    /// <summary>fp32 matmul rate of all cores, GFLOP/s: the compute rate when the CPU is the training device.</summary>
    public Figure? MatmulGflops { get; init; }
    /// <summary>bf16 matmul rate of all cores, GFLOP/s; without it bf16 training is costed at the fp32 rate.</summary>
    public Figure? MatmulGflopsBf16 { get; init; }
    /// <summary>How a transformer layer's work becomes time on this CPU, fitted to timed layers; null: the GPU-fitted defaults.</summary>
    public CpuLayerCompute? LayerCompute { get; init; }
    /// <summary>
    /// As <see cref="LayerCompute"/> for layers timed in bf16, against <see cref="MatmulGflopsBf16"/>: the engine computes in the
    /// training precision on a CPU, and bf16's small operations cost other than fp32's (on the CI VM a tiny model's bf16 step
    /// took four times its fp32 one, where gpt2's took half). Null: bf16 training takes the fp32 fit.
    /// </summary>
    public CpuLayerCompute? LayerComputeBf16 { get; init; }

    /// <summary>The layer fit for training in <paramref name="precision"/>: the bf16 one where bf16 has it, else <see cref="LayerCompute"/> (fp16 too).</summary>
    public CpuLayerCompute? LayerComputeFor(Settings.Precision precision) =>
        precision == Settings.Precision.Bf16 && LayerComputeBf16 is { } bf16 ? bf16 : LayerCompute;

    /// <summary>The CPU's matmul rate; without a figure, 16 fp32 FLOP per cycle per core at 2.5 GHz, half achieved (an estimate).</summary>
    public FlopRate MatmulRate => MatmulGflops is { } f ? new FlopRate(f.Value * 1e9) : new FlopRate(Cores * 20e9);

    /// <summary>The matmul rate for <paramref name="precision"/>: bf16 and fp16 use the bf16 figure when there is one.</summary>
    public FlopRate MatmulRateFor(Precision precision) =>
        precision != Precision.Fp32 && MatmulGflopsBf16 is { } b ? new FlopRate(b.Value * 1e9) : MatmulRate;

    public Bandwidth MemoryBandwidth => Bandwidth.FromGBps(MemoryBandwidthGbps.Value);

    /// <summary>8-bit / fp32 CPU Adam rate measured 2026-12-05 on the 2-core CI VM (docs/benchmarks.md, "8-bit optimizer state: CPU update rate").</summary>
    public const double DefaultAdam8Ratio = 0.37;

    /// <summary>The 8-bit update rate: the profile's figure, or the fp32 rate × <see cref="DefaultAdam8Ratio"/> with that provenance.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Figure Adam8Rate => Adam8ParamsPerS ?? new Figure(AdamParamsPerS.Value * DefaultAdam8Ratio, new Provenance(FigureSource.Estimate,
        Method: $"adam_params_per_s × {DefaultAdam8Ratio} (8-bit / fp32 ratio measured 2026-12-05 on the 2-core VM, docs/benchmarks.md 8-bit section)"));

    /// <summary>
    /// The per-call cost of a profile without <see cref="OptimizerCallOverheadS"/>: none. Such a profile's Adam rates were
    /// measured on calls of 32 M parameters or more, so they already spread a call's fixed cost over its parameters, and
    /// the predictions made with them stay as they were.
    /// </summary>
    public const double DefaultOptimizerCallOverheadS = 0;

    /// <summary>Seconds per CPU optimizer update call: the profile's figure or <see cref="DefaultOptimizerCallOverheadS"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double OptimizerCallOverhead => OptimizerCallOverheadS?.Value ?? DefaultOptimizerCallOverheadS;

    /// <summary>Parameters per second CPU Adam updates with its state in <paramref name="format"/>.</summary>
    public double AdamRateFor(Optim.OptimizerStateFormat format) =>
        format == Optim.OptimizerStateFormat.EightBit ? Adam8Rate.Value : AdamParamsPerS.Value;

    /// <summary>
    /// As <see cref="AdamRateFor(Optim.OptimizerStateFormat)"/> for the update <paramref name="pass"/> an fp32-state update
    /// runs: the engine's bf16 pass takes <see cref="AdamBf16ParamsPerS"/> when the profile has it, its fp16 pass
    /// <see cref="AdamFp16Rate"/>. 8-bit state takes its own rate whatever the pass.
    /// </summary>
    public double AdamRateFor(Optim.OptimizerStateFormat format, CpuUpdatePass pass) => (format, pass) switch
    {
        (Optim.OptimizerStateFormat.EightBit, _) => AdamRateFor(format),
        (_, CpuUpdatePass.Bf16Gradients) when AdamBf16ParamsPerS is { } bf16 => bf16.Value,
        (_, CpuUpdatePass.Fp16Copy) => AdamFp16Rate.Value,
        _ => AdamRateFor(format),
    };

    /// <summary>
    /// The engine's fp16 update rate over the fp32-gradient one (<see cref="AdamFp16ParamsPerS"/> ÷ <see cref="AdamParamsPerS"/>)
    /// for profiles without the figure. On an H100 VM (2026-12-07 23:56 UTC, docs/validation/h100-2026-12-07-s29) the fp16 updates
    /// ran 4.06 and 4.24 G params/s in training (means of two settings) where their bf16 twins ran 4.65 and 4.90 against that
    /// profile's bf16 figure of 5.32: scaled to the profile's machine by the twins, 4.61–4.66 against its fp32-gradient 5.78,
    /// 0.80–0.81 (docs/benchmarks.md, "CPU Adam in fp16 training").
    /// </summary>
    public const double DefaultAdamFp16Ratio = 0.80;

    /// <summary>The engine's fp16 update rate: the profile's figure, or the fp32-gradient rate × <see cref="DefaultAdamFp16Ratio"/> with that provenance.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Figure AdamFp16Rate => AdamFp16ParamsPerS ?? new Figure(AdamParamsPerS.Value * DefaultAdamFp16Ratio, new Provenance(FigureSource.Estimate,
        Method: $"adam_params_per_s × {DefaultAdamFp16Ratio} (fp16 / fp32-gradient update ratio, docs/benchmarks.md \"CPU Adam in fp16 training\")"));

    public Bytes Ram => Bytes.FromGiB(RamGib.Value);

    internal void Validate(ValidationProblems p, string at)
    {
        p.Positive(at + ".cores", Cores, HardwareBounds.MaxCores);
        p.Positive(at + ".ram_gib", RamGib.Value, HardwareBounds.MaxRamGib, " GiB");
        p.InRange(at + ".memory_bandwidth_gbps", MemoryBandwidthGbps.Value, HardwareBounds.MinMemoryGbps, HardwareBounds.MaxMemoryGbps, " GB/s");
        p.InRange(at + ".adam_params_per_s", AdamParamsPerS.Value, HardwareBounds.MinAdamParamsPerS, HardwareBounds.MaxAdamParamsPerS);
        if (AdamBf16ParamsPerS is { } ab) p.InRange(at + ".adam_bf16_params_per_s", ab.Value, HardwareBounds.MinAdamParamsPerS, HardwareBounds.MaxAdamParamsPerS);
        if (AdamFp16ParamsPerS is { } a16) p.InRange(at + ".adam_fp16_params_per_s", a16.Value, HardwareBounds.MinAdamParamsPerS, HardwareBounds.MaxAdamParamsPerS);
        if (Adam8ParamsPerS is { } a8) p.InRange(at + ".adam8_params_per_s", a8.Value, HardwareBounds.MinAdamParamsPerS, HardwareBounds.MaxAdamParamsPerS);
        if (OptimizerCallOverheadS is { } call) p.NonNegative(at + ".optimizer_call_overhead_s", call.Value, HardwareBounds.MaxOptimizerCallOverheadS, " s");
        if (HostAddGbps is { } add) p.InRange(at + ".host_add_gbps", add.Value, HardwareBounds.MinMemoryGbps, HardwareBounds.MaxMemoryGbps, " GB/s");
        if (MatmulGflops is { } m) p.InRange(at + ".matmul_gflops", m.Value, HardwareBounds.MinCpuGflops, HardwareBounds.MaxCpuGflops, " GFLOP/s");
        if (MatmulGflopsBf16 is { } b) p.InRange(at + ".matmul_gflops_bf16", b.Value, HardwareBounds.MinCpuGflops, HardwareBounds.MaxCpuGflops, " GFLOP/s");
        LayerCompute?.Validate(p, at + ".layer_compute");
        LayerComputeBf16?.Validate(p, at + ".layer_compute_bf16");
    }
}
