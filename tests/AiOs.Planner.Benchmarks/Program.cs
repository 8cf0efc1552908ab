using System.Diagnostics;
using AiOs.Planner.Benchmarks;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Simulation;
using BenchmarkDotNet.Running;

// `dotnet run -c Release -- quick` times the targets directly (seconds, no statistics);
// `-- adam [threads] [rounds]` does the same for CPU Adam against the memory bandwidth (issue 16);
// anything else goes to BenchmarkDotNet (e.g. `-- --filter '*'`).
if (args.Length > 0 && args[0] == "adam")
{
    CpuAdamBenchmarks.Quick(args);
    return;
}
if (args.Length > 0 && args[0] == "quick")
{
    var model = ModelCatalog.Default.Load("gpt3-175b");
    var node = ProfileCatalog.Default.Load("h100-node");
    for (int i = 0; i < 20; i++) Simulator.Predict(model, node, Settings.Infinity);
    var watch = Stopwatch.StartNew();
    const int steps = 200;
    for (int i = 0; i < steps; i++) Simulator.Predict(model, node, Settings.Infinity);
    Console.WriteLine($"gpt3-175b, 8 GPUs, one step: {watch.Elapsed.TotalMilliseconds / steps:0.00} ms");
    var sweep = Settings.Sweep(10_000).ToArray();
    watch.Restart();
    foreach (var s in sweep) Simulator.Predict(model, node, s);
    Console.WriteLine($"gpt3-175b, 10,000 settings: {watch.Elapsed.TotalSeconds:0.00} s");
    var tune = AiOs.Planner.Tuning.Tuner.Tune(new AiOs.Planner.Tuning.TuneRequest { Model = model, Hardware = node, Budget = 10_000 });
    Console.WriteLine($"tuner, gpt3-175b on 8 GPUs: {tune.Evaluated:N0} candidates ({tune.Simulated:N0} simulated) in {tune.Elapsed.TotalSeconds:0.00} s");
    if (args.Length > 1)
    {
        watch.Restart();
        long ops = 0;
        foreach (var s in sweep) ops += AiOs.Planner.Simulation.Program.StepScheduler.Build(model, node, s).Ops.Count;
        Console.WriteLine($"build only: {watch.Elapsed.TotalSeconds:0.00} s, {ops / sweep.Length} ops per program");
    }
    return;
}
// `-- host-memory RUN_FOLDER...` compares each run's peak RSS with the planner's aios host figure (issue 14).
if (args.Length > 0 && args[0] == "host-memory")
{
    Environment.ExitCode = HostMemoryReport.Run(args[1..]);
    return;
}
// `-- adamcall [threads] [seconds per size]` fits CPU Adam's time per call, t = a + b·n, over 4 K to 64 M parameters (issue 13).
if (args.Length > 0 && args[0] == "adamcall")
{
    AdamCallCost.Run(args);
    return;
}
// `-- adam8 [N] [threads]` times the fp32 and 8-bit CPU AdamW directly (issue 15), for a quick look on a busy machine.
if (args.Length > 0 && args[0] == "adam8")
{
    OptimizerStateQuick.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1 << 22,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1);
    return;
}
// `-- adam8ab DIR_A DIR_B [N] [steps] [rounds] [threads] [nobf]` times two builds' 8-bit Adam against each other in one process (issue 15).
if (args.Length > 0 && args[0] == "adam8ab")
{
    EightBitAb.Run(args);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(SimulatorBenchmarks).Assembly).Run(args);
