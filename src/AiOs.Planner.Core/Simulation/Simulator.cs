using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Simulation;

/// <summary>Predicts one training step: schedule the program, cost it on the machine, simulate it.</summary>
public static class Simulator
{
    /// <summary>Simulates one steady-state step (or the first step, which prefetches nothing).</summary>
    public static StepResult Predict(ModelSpec model, HardwareProfile hardware, TrainingSettings settings,
        bool keepTimeline = false, bool firstStep = false, ComputeModel? computeModel = null)
    {
        var program = StepScheduler.Build(model, hardware, settings, firstStep, ProgramShape.For(settings, hardware));
        var costs = Costs(program, hardware, settings, computeModel);
        return StepSimulator.Simulate(program, costs, keepTimeline);
    }

    /// <summary>The step's time and bottleneck only (no memory trace, no event kernel): for search.</summary>
    public static StepTiming PredictTime(ModelSpec model, HardwareProfile hardware, TrainingSettings settings, ComputeModel? computeModel = null)
    {
        var program = StepScheduler.Build(model, hardware, settings, false, ProgramShape.For(settings, hardware));
        var costs = Costs(program, hardware, settings, computeModel);
        return StepTimes.Compute(program, costs);
    }

    /// <summary>
    /// The machine's costs for <paramref name="program"/>: the swap files' size (the program's static NVMe level, per node)
    /// sets the drives' swap rates, and its compute operations the host's dispatch deficit; the settings' executor picks
    /// whose kernels are priced (the engine's or PyTorch eager's).
    /// </summary>
    public static StepCosts Costs(StepProgram program, HardwareProfile hardware, TrainingSettings settings, ComputeModel? computeModel = null) =>
        new(hardware, settings, program.GpusPerNode, program.Topology.Nodes,
            new Units.Bytes(program.StaticLevels.GetValueOrDefault(Memory.MemoryTier.Nvme)), computeModel, program);
}
