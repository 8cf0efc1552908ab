using AiOs.Planner.Memory;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using Spectre.Console;

namespace AiOs.Planner.Cli.Rendering;

/// <summary>Renders a plan as readable tables.</summary>
public static class PlanTables
{
    public static void Render(IAnsiConsole console, PlanResult plan)
    {
        var s = plan.Settings;
        console.MarkupLineInterpolated($"[bold]{plan.Model.Name}[/] ({plan.Model.TotalParameters:N0} parameters) on [bold]{plan.Hardware.Name}[/]: {plan.Nodes} node(s) × {plan.GpusPerNode} GPU(s)");
        console.MarkupLineInterpolated($"ZeRO {SettingsRules.Name(s.ZeroStage)}, parameters → {Tier(s.ParamOffload)}, optimizer → {Tier(s.OptimizerOffload)}, gradients → {Tier(s.EffectiveGradientOffload)}; {s.Precision.ToString().ToLowerInvariant()}, micro-batch {s.MicroBatch} × {s.SeqLen} tokens{(s.ActivationCheckpointing ? ", checkpointing" : "")}");

        var tiers = new Table().Title("Peak memory per tier").AddTextColumns("tier", "peak", "capacity", "use");
        foreach (var tier in plan.Memory.Tiers)
        {
            if (tier.Items.Count == 0) continue;
            double use = tier.Capacity.Value > 0 ? tier.Peak / tier.Capacity : double.PositiveInfinity;
            string colour = use <= 0.9 ? "green" : use <= 1 ? "yellow" : "red";
            tiers.AddRow(new Text(Name(tier.Tier)), new Text(tier.Peak.ToString()), new Text(tier.Capacity.ToString()),
                TableText.Coloured(double.IsInfinity(use) ? "n/a" : use.ToString("P0"), colour));
        }
        console.Write(tiers);

        var breakdown = new Table().TextTitle($"Breakdown (GPU peak at the {plan.Memory.GpuPeakPhase})").AddTextColumns("tier", "item", "bytes", "note");
        foreach (var tier in plan.Memory.Tiers)
            foreach (var item in tier.Items)
                breakdown.AddTextRow(Name(tier.Tier), item.Name, item.Bytes.ToString(), item.Note);
        console.Write(breakdown);

        if (plan.Step is { } step) RenderStep(console, plan, step);

        if (plan.Feasible)
        {
            console.MarkupLine("[green]Feasible:[/] every tier fits.");
            return;
        }
        console.MarkupLine("[red]Not feasible:[/]");
        foreach (string problem in plan.Problems) console.MarkupLineInterpolated($"  - {problem}");
    }

    private static void RenderStep(IAnsiConsole console, PlanResult plan, StepResult step)
    {
        bool gpu = plan.Hardware.HasGpu;
        string first = plan.FirstStep is { } f ? $" (first step {f.Time})" : "";
        console.MarkupLineInterpolated($"Step: [bold]{step.Time}[/]{first}, {step.TokensPerSecond:N0} tokens/s, {step.ModelTflopsPerGpu:0.#} model TFLOP/s per GPU; bottleneck: [bold]{ResourceNames.Of(step.Bottleneck, gpu)}[/]");
        console.MarkupLineInterpolated($"Phases: forward {step.Phases.Forward}, backward {step.Phases.Backward}, optimizer {step.Phases.Optimizer}");
        if (plan.Correction is { Applied: true } c)
            console.MarkupLineInterpolated($"Corrected from past runs (× {c.Ratios.Forward:0.##} forward, × {c.Ratios.Backward:0.##} backward, × {c.Ratios.Optimizer:0.##} optimizer); the simulator alone said {c.Uncorrected.Total * 1e3:0.###} ms.");
        else if (plan.Correction is { } u)
            console.MarkupLineInterpolated($"[yellow]Uncorrected[/]: the profile's learned correction was not applied ({u.Reason}).");
        var table = new Table().Title("Resources in one step").AddTextColumns("resource", "busy", "utilization", "on critical path");
        foreach (var (kind, busy) in step.Busy.OrderBy(kv => kv.Key))
            table.AddTextRow(ResourceNames.Of(kind, gpu), busy.ToString(), step.Utilization(kind).ToString("P0"), step.CriticalPath.GetValueOrDefault(kind).ToString());
        console.Write(table);
        var t = step.Traffic;
        console.MarkupLineInterpolated($"Traffic: NVMe read {t.NvmeRead}, write {t.NvmeWrite} (per node); host→GPU {t.H2d}, GPU→host {t.D2h}, collectives {t.Network} (per GPU)");
    }

    private static string Tier(OffloadTier tier) => tier switch { OffloadTier.None => "GPU", OffloadTier.Cpu => "CPU", _ => "NVMe" };

    private static string Name(MemoryTier tier) => tier switch
    {
        MemoryTier.Gpu => "GPU (per GPU)",
        MemoryTier.CpuPinned => "pinned RAM (per node)",
        MemoryTier.CpuPageable => "pageable RAM (per node)",
        _ => "NVMe (per node)",
    };
}
