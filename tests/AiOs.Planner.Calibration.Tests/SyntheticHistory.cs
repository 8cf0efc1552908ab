using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>
/// A history built without training: the simulator's real predictions for tiny models, and "measured" times
/// that follow a known law (forward slower with larger micro-batches, backward twice as slow, the optimizer
/// faster), with seeded ±5% noise.
/// </summary>
internal static class SyntheticHistory
{
    public static HardwareProfile Profile => ProfileCatalog.Default.Load("ci-2core-24gb");

    public static ModelSpec Model(string name) => ModelCatalog.Default.Load(name);

    /// <summary>The law the measured times follow.</summary>
    public static PhaseRatios TrueRatios(TrainingSettings s) => new(1.2 + 0.25 * s.MicroBatch, 2.0 + s.SeqLen / 128.0, 0.5);

    public static IReadOnlyList<RunObservation> Create(int seed)
    {
        var random = new Random(seed);
        var runs = new List<RunObservation>();
        foreach (string model in new[] { "tiny-gpt", "tiny-llama" })
            foreach (int seq in new[] { 32, 64, 96, 128 })
                foreach (int mb in new[] { 1, 2, 4, 6, 8 })
                {
                    var spec = Model(model);
                    var settings = new TrainingSettings { MicroBatch = mb, SeqLen = seq, Precision = Precision.Fp32 };
                    var predicted = Simulator.Predict(spec, Profile, settings).Phases;
                    var features = CorrectionFeatures.Of(spec, settings, predicted);
                    var measured = features.Predicted.Scaled(TrueRatios(settings));
                    double noise() => 1 + (random.NextDouble() - 0.5) * 0.1;
                    runs.Add(new RunObservation($"{model}-s{seq}-b{mb}", features,
                        new PhaseSeconds(measured.Forward * noise(), measured.Backward * noise(), measured.Optimizer * noise())));
                }
        return runs;
    }
}
