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
    /// <summary>Knob-search budget per cell (the structure search always runs in full).</summary>
    public int BudgetPerCell { get; init; }
}

/// <summary>One model on one machine, with its best settings.</summary>
public sealed record WhatIfCell(string Model, long Parameters, string Hardware, string Variant, bool Fits, double TokensPerSecond,
    string Bottleneck, string Settings, Bytes GpuPeak, Bytes HostPeak);

/// <summary>The what-if table and its summaries.</summary>
public sealed record WhatIfResult(IReadOnlyList<WhatIfCell> Cells, IReadOnlyDictionary<string, string?> LargestAtRate);

/// <summary>Answers "what if I ran these models on these machines", for planning before buying hardware.</summary>
public static class WhatIf
{
    public const string AsIs = "as is";

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
                var result = Tuner.Tune(new TuneRequest
                {
                    Model = model, Hardware = profile, Base = baseSettings, Budget = request.BudgetPerCell, MaxGradAccumulation = 1,
                });
                var best = result.Best;
                cells.Add(new WhatIfCell(model.Name, model.TotalParameters, name, variant, best is not null, best?.TokensPerSecond ?? 0,
                    best?.Bottleneck ?? "does not fit", best is null ? "" : Tuner.Describe(best.Settings), best?.GpuPeak ?? Bytes.Zero, best?.HostPeak ?? Bytes.Zero));
            }
        }
        var largest = request.Hardware.ToDictionary(h => h.Name, h => cells
            .Where(c => c.Hardware == h.Name && c.Variant == AsIs && c.Fits && c.TokensPerSecond >= request.MinTokensPerSecond)
            .OrderByDescending(c => c.Parameters).Select(c => c.Model).FirstOrDefault());
        return new WhatIfResult(cells, largest);
    }
}
