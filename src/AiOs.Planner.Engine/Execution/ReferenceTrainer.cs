using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The all-in-memory reference: the whole model resident, one autograd pass over it per micro-batch,
/// gradients accumulated in fp32, then the same AdamW on fp32 master weights and the same clipping
/// rule. Offloaded runs are checked against its losses and weights.
/// </summary>
public sealed class ReferenceTrainer : IDisposable
{
    private readonly ModelSpec _spec;
    private readonly TrainingSettings _settings;
    private readonly EngineOptions _options;
    private readonly GptModel _model;
    private readonly OptimizerStates _optim;
    private readonly CpuGradientStore _grads;
    private readonly LossScaler? _scaler;
    private int _step;

    /// <summary>Builds the model in the training precision from the initial weights (seeded, or <see cref="EngineOptions.InitFrom"/>).</summary>
    public ReferenceTrainer(ModelSpec spec, TrainingSettings settings, EngineOptions options, IOptimizerStep? optimizer = null)
    {
        using InitialWeights initial = InitialWeights.Open(spec, options.Seed, options.InitFrom);
        Native.TorchRuntime.EnsureReady(Native.TorchRuntime.DeviceTypeOf(options.Device));
        _spec = spec;
        _settings = settings;
        _options = options;
        _model = new GptModel(spec, EngineSettings.DType(settings.Precision), new Device(options.Device));
        _scaler = settings.Precision == Precision.Fp16 ? new LossScaler(options.InitialLossScale, hysteresis: options.LossScaleHysteresis) : null;
        long[] elements = Enumerable.Range(0, _model.UnitCount).Select(u => _model.Unit(u).Layout.Elements).ToArray();
        _optim = new OptimizerStates(elements, StorageTier.Cpu, long.MaxValue,
            optimizer ?? EngineSettings.Optimizer(options), null, new IoCounters(), new SpanTrace(TimeProvider.System));
        _grads = new CpuGradientStore(elements, new SpanTrace(TimeProvider.System));
        int unit = 0;
        foreach (float[] values in initial.InOrder(elements.Length))
        {
            int u = unit++;
            _optim.Initialise(u, values);
            WriteBack(u, 0, values);
        }
    }

    /// <summary>The fp32 master weights of <paramref name="unit"/>.</summary>
    public float[] MasterOf(int unit) => _optim.ReadMaster(unit);

    /// <summary>One optimizer step over <c>GradAccumulation</c> micro-batches.</summary>
    public StepResult Step(Func<int, TokenBatch> batchOf)
    {
        int step = ++_step;
        double loss = 0;
        long tokens = 0;
        for (int micro = 0; micro < _settings.GradAccumulation; micro++)
        {
            using TokenBatch batch = batchOf(micro);
            tokens += batch.Tokens;
            using var scope = NewDisposeScope();
            Tensor l = _model.Loss(batch.Inputs.to(_model.Outer.Parameters.Flat.device), batch.Targets.to(_model.Outer.Parameters.Flat.device), _settings.GradAccumulation,
                new DropoutReplay(_options.Seed, step, micro));
            loss += l.item<float>();
            if (_scaler is null) l.backward();
            else
            {
                using Scalar scale = _scaler.Scale;
                l.mul(scale).backward();
            }
            for (int u = 0; u < _model.UnitCount; u++) _grads.Accumulate(u, _model.Unit(u), micro == 0, micro == _settings.GradAccumulation - 1);
        }
        double? usedScale = _scaler?.Scale;
        bool skipped = _scaler is not null && !_scaler.Update(LossScaler.Overflowed(_grads.SumOfSquares.Sum()));
        if (!skipped)
        {
            float[] scales = Scales();
            var groups = Enumerable.Range(0, _model.UnitCount).SelectMany(_optim.SubGroupsOf).ToArray();
            _optim.Update(groups, _grads, u => scales[u], step - (_scaler?.Skipped ?? 0), WriteBack);
        }
        return new StepResult(step, loss, tokens, SimDuration.Zero, SimDuration.Zero, SimDuration.Zero, SimDuration.Zero, SimDuration.Zero)
        {
            LossScale = usedScale, Skipped = skipped, LearningRate = skipped ? null : _options.Adam.LearningRateAt(step - (_scaler?.Skipped ?? 0)),
        };
    }

    private float[] Scales() => GradientScales.All(_grads.SumOfSquares, _model.UnitCount, _options.Clipping, _scaler?.Scale ?? 1);

    private void WriteBack(int unit, long offset, ReadOnlySpan<float> master)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _model.Unit(unit).Flat.narrow(0, offset, master.Length).copy_(tensor(master.ToArray()));
    }

    public void Dispose()
    {
        _model.Dispose();
        _optim.Dispose();
    }
}
