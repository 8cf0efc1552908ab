using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>A what-if question: these models on these machines (and their upgrades), each with its best settings.</summary>
public sealed record WhatIfRequest
{
    public required IReadOnlyList<ModelSpec> Models { get; init; }
    public required IReadOnlyList<HardwareProfile> Hardware { get; init; }
    /// <summary>Fixed settings (sequence length, precision, NVMe folder).</summary>
    public TrainingSettings Base { get; init; } = new();
    /// <summary>Also try each machine with one more drive, twice the RAM and one more GPU per node.</summary>
    public bool Upgrades { get; init; } = true;
    /// <summary>For "the largest model each machine trains at this rate or better".</summary>
    public double MinTokensPerSecond { get; init; }
    /// <summary>Candidates per cell at most, as <see cref="TuneRequest.Budget"/> (the structure search always runs in full).</summary>
    public int Budget { get; init; } = TuneRequest.DefaultBudget;
    /// <summary>As <see cref="TuneRequest.MaxGradAccumulation"/>.</summary>
    public int MaxGradAccumulation { get; init; } = TuneRequest.DefaultMaxGradAccumulation;
    /// <summary>As <see cref="TuneRequest.MaxMicroBatch"/>.</summary>
    public int MaxMicroBatch { get; init; } = TuneRequest.DefaultMaxMicroBatch;
    /// <summary>As <see cref="TuneRequest.GlobalBatch"/>: fix it to compare machines at the same global batch.</summary>
    public int? GlobalBatch { get; init; }
    /// <summary>As <see cref="TuneRequest.MemoryHeadroom"/>.</summary>
    public double MemoryHeadroom { get; init; } = TuneRequest.DefaultMemoryHeadroom;
    /// <summary>As <see cref="TuneRequest.AllowEightBitOptimizer"/>.</summary>
    public bool AllowEightBitOptimizer { get; init; }
    /// <summary>As <see cref="TuneRequest.OptimizerRamMargin"/>.</summary>
    public double OptimizerRamMargin { get; init; } = TuneRequest.DefaultOptimizerRamMargin;
}

/// <summary>
/// One model on one machine, with its best settings (what <c>aios tune</c> gives for the same inputs), its global
/// batch and, when nothing fits or the request cannot run, why.
/// </summary>
public sealed record WhatIfCell(string Model, long Parameters, string Hardware, string Variant, bool Fits, double TokensPerSecond,
    string Bottleneck, string Settings, Bytes GpuPeak, Bytes HostPeak, long SequencesPerStep = 0, long TokensPerStep = 0, string Note = "");

/// <summary>The what-if table and its summaries.</summary>
public sealed record WhatIfResult(IReadOnlyList<WhatIfCell> Cells, IReadOnlyDictionary<string, string?> LargestAtRate);

/// <summary>
/// Answers "what if I ran these models on these machines", for planning before buying hardware. Each cell is the
/// tuner's answer with the same search and defaults as <c>aios tune</c>, so the two agree for the same inputs.
/// </summary>
public static class WhatIf
{
    public const string AsIs = "as is";

    /// <summary>Problems with the search limits, which would hold in every cell: check before <see cref="Run"/>.</summary>
    public static IReadOnlyList<SettingsProblem> Check(WhatIfRequest request) =>
        TuneRequestRules.CheckLimits(request.MemoryHeadroom, request.MaxMicroBatch, request.MaxGradAccumulation, request.GlobalBatch);

    public static WhatIfResult Run(WhatIfRequest request)
    {
        var machines = new List<(HardwareProfile Profile, string Base, string Variant)>();
        foreach (var hw in request.Hardware)
        {
            machines.Add((hw, hw.Name, AsIs));
            if (!request.Upgrades) continue;
            if (hw.Drives.Count > 0) machines.Add((hw with { Drives = [hw.Drives[0] with { Count = hw.Drives[0].Count + 1 }, .. hw.Drives.Skip(1)] }, hw.Name, "+1 drive"));
            machines.Add((hw with { Cpu = hw.Cpu with { RamGib = hw.Cpu.RamGib.Value * 2 } }, hw.Name, "2× RAM"));
            if (hw.HasGpu) machines.Add((hw with { GpusPerNode = hw.GpusPerNode + 1 }, hw.Name, "+1 GPU"));
        }
        var cells = new List<WhatIfCell>();
        foreach (var (profile, name, variant) in machines)
        {
            foreach (var model in request.Models)
            {
                var baseSettings = request.Base with
                {
                    SeqLen = Math.Min(request.Base.SeqLen, model.MaxSeqLen),
                    GpusPerNode = request.Base.GpusPerNode is { } g && variant == "+1 GPU" ? g + 1 : request.Base.GpusPerNode,
                };
                var result = Tuner.Tune(TuneRequestFor(request, model, profile, baseSettings));
                var best = result.Best;
                string note = best is not null ? "" : result.Problems.Count > 0 ? string.Join("; ", result.Problems) : result.Explanation.Count > 0 ? result.Explanation[0] : "";
                cells.Add(new WhatIfCell(model.Name, model.TotalParameters, name, variant, best is not null, best?.TokensPerSecond ?? 0,
                    best?.Bottleneck ?? "does not fit", best is null ? "" : Tuner.Describe(best.Settings, profile.HasGpu), best?.GpuPeak ?? Bytes.Zero, best?.HostPeak ?? Bytes.Zero,
                    best?.SequencesPerStep ?? 0, best?.TokensPerStep ?? 0, note));
            }
        }
        var largest = request.Hardware.ToDictionary(h => h.Name, h => cells
            .Where(c => c.Hardware == h.Name && c.Variant == AsIs && c.Fits && c.TokensPerSecond >= request.MinTokensPerSecond)
            .OrderByDescending(c => c.Parameters).Select(c => c.Model).FirstOrDefault());
        return new WhatIfResult(cells, largest);
    }

    /// <summary>The tuning request of one cell: the what-if's search limits, unchanged, on that model and machine.</summary>
    private static TuneRequest TuneRequestFor(WhatIfRequest request, ModelSpec model, HardwareProfile profile, TrainingSettings baseSettings) => new()
    {
        Model = model, Hardware = profile, Base = baseSettings, Budget = request.Budget, MaxGradAccumulation = request.MaxGradAccumulation,
        MaxMicroBatch = request.MaxMicroBatch, GlobalBatch = request.GlobalBatch, MemoryHeadroom = request.MemoryHeadroom,
        AllowEightBitOptimizer = request.AllowEightBitOptimizer,
        OptimizerRamMargin = request.OptimizerRamMargin,
    };
}
