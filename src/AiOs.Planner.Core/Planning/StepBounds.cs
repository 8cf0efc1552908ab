using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Planning;

/// <summary>One lower bound on a step: the work of one resource at the profile's rate, and how far the prediction sits above it.</summary>
/// <param name="Resource">compute, pcie h2d, pcie d2h, nvme, cpu adam.</param>
/// <param name="Time">The work at the rate: no step on this hardware can be shorter.</param>
/// <param name="Basis">The work and the rate, in words ("3.2 PFLOP ÷ 989 TFLOP/s").</param>
/// <param name="Ratio">The predicted step ÷ <see cref="Time"/> (≥ 1 unless the model is wrong).</param>
public sealed record StepBound(string Resource, SimDuration Time, string Basis, double Ratio);

/// <summary>
/// The step's lower bounds at NVMe scale (issue 14 item 6): model FLOPs ÷ the GPU's datasheet peak, bytes over PCIe ÷ the
/// pinned link rate each way, NVMe bytes ÷ the drives' peak read and write rates, and parameters updated ÷ the CPU's Adam rate.
/// </summary>
/// <remarks>
/// These are physics, not the simulator: each uses the profile's best rate (peaks, no latency, no efficiency curve), so a
/// prediction far above every bound says where the model thinks time goes beyond the hardware's floor. The tuner's bound
/// (Tuner.Bounds) answers another question, the simulator's own cost at the fastest knobs, to prune a search; it is not reused here.
/// </remarks>
public static class StepBounds
{
    /// <summary>The bounds of <paramref name="plan"/>'s simulated step when it offloads to NVMe; empty otherwise.</summary>
    public static IReadOnlyList<StepBound> Of(PlanResult plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Step is not { } step || !plan.Settings.UsesNvme) return [];
        var hw = plan.Hardware;
        var s = plan.Settings;
        double stepS = step.Time.Seconds;
        var bounds = new List<StepBound>();
        void Add(string resource, double seconds, string basis)
        {
            if (seconds > 0) bounds.Add(new StepBound(resource, SimDuration.FromSeconds(seconds), basis, stepS / seconds));
        }

        // Model FLOPs (forward and backward, no recompute) per GPU: what the simulator's TFLOP/s figure counts.
        double flops = step.ModelTflopsPerGpu * 1e12 * stepS;
        double rate = hw.Gpu is { } gpu ? (gpu.PeakTflops.For(s.Precision)?.Value ?? gpu.PeakTflops.Fp32?.Value ?? 1) * 1e12 : hw.Cpu.MatmulRateFor(s.Precision).FlopsPerSecond;
        Add("compute", flops / rate, $"{flops / 1e12:N1} TFLOP ÷ {rate / 1e12:N0} TFLOP/s ({(hw.Gpu is null ? "CPU" : "GPU peak")})");

        if (hw.HostLink is { } link && hw.HasGpu)
        {
            Add("pcie h2d", step.Traffic.H2d.Value / link.H2d(pinned: true).BytesPerSecond, $"{step.Traffic.H2d} ÷ {link.H2dPinnedGbps.Value:N1} GB/s (pinned)");
            Add("pcie d2h", step.Traffic.D2h.Value / link.D2h(pinned: true).BytesPerSecond, $"{step.Traffic.D2h} ÷ {link.D2hPinnedGbps.Value:N1} GB/s (pinned)");
        }

        // Reads and writes share the drives, so their times add; the rates are the drives' peaks, all drives together.
        double read = hw.Drives.Sum(d => d.Read.PeakGbps.Value * d.Count) * 1e9, write = hw.Drives.Sum(d => d.Write.PeakGbps.Value * d.Count) * 1e9;
        if (read > 0 && write > 0)
            Add("nvme", step.Traffic.NvmeRead.Value / read + step.Traffic.NvmeWrite.Value / write,
                $"{step.Traffic.NvmeRead} ÷ {read / 1e9:N1} GB/s read + {step.Traffic.NvmeWrite} ÷ {write / 1e9:N1} GB/s write (per node)");

        if (s.OptimizerOffload != OffloadTier.None)
        {
            // Each node's CPUs update the partitions of its own GPU processes.
            var topology = plan.Topology;
            double parameters = (double)plan.Model.TotalParameters * topology.GpusPerNode / Math.Max(1, topology.Ranks);
            double adam = hw.Cpu.AdamRateFor(s.OptimizerState, Simulation.StepCosts.EngineUpdatePass(s));
            Add("cpu adam", parameters / adam, $"{parameters / 1e9:N2} G parameters ÷ {adam / 1e9:N2} G/s (per node)");
        }
        return bounds;
    }
}
