using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine;

/// <summary>What to train and where to write the run.</summary>
public sealed record EngineRunRequest
{
    public required ModelSpec Model { get; init; }
    public required TrainingSettings Settings { get; init; }
    public required int Steps { get; init; }
    /// <summary>A text file read as bytes; the bundled text by default.</summary>
    public string DatasetPath { get; init; } = BundledText.DefaultPath;
    /// <summary>How the text becomes tokens: bytes (any model) or GPT-2 BPE (models with vocab_size ≥ 50,257).</summary>
    public Tokenization Tokenization { get; init; } = Tokenization.Bytes;
    public EngineOptions Options { get; init; } = new();
    /// <summary>Folder that receives <c>&lt;run id&gt;/</c>.</summary>
    public string RunsRoot { get; init; } = "runs";
    /// <summary>Write a checkpoint every this many steps (and when cancelled); null: never.</summary>
    public int? SaveEvery { get; init; }
    /// <summary>Makes the swap store for the run's swap folder; null picks one from <see cref="EngineOptions.DirectIo"/>.</summary>
    public Func<Storage.SwapDirectory, Storage.ISwapStore>? SwapStore { get; init; }
    /// <summary>A checkpoint folder, or a run folder whose newest checkpoint is used, to continue from; <see cref="Steps"/> counts from the start of the original run.</summary>
    public string? ResumeFrom { get; init; }
    /// <summary>Told each warning before training starts (for example pretrained tensors the model does not use); summary.json records them too.</summary>
    public Action<string>? OnWarning { get; init; }
}

/// <summary>
/// Library entry point for a measured training run: checks the request, trains with
/// <see cref="LayerwiseTrainer"/>, and writes <c>runs/&lt;id&gt;/</c>: <c>settings.json</c> (first),
/// <c>metrics.jsonl</c> (a line per step, as it finishes), <c>trace.jsonl</c> (spans, per step) and
/// <c>summary.json</c> (last, also after cancellation or failure). Whole files are replaced atomically.
/// </summary>
public static class EngineRun
{
    private static readonly JsonSerializerOptions LineOptions = new(DescriptionJson.Options) { WriteIndented = false };

    /// <summary>Runs the request; <paramref name="progress"/> sees each step's metrics. Returns the summary it wrote.</summary>
    public static RunSummary Execute(EngineRunRequest request, IProgress<StepMetrics>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Steps < 1) throw new ArgumentOutOfRangeException(nameof(request), "steps must be at least 1.");
        EngineSettings.Check(request.Model, request.Settings, request.Options);
        IReadOnlyList<string> warnings = CheckInitFrom(request);
        foreach (string w in warnings) request.OnWarning?.Invoke(w);
        TokenDataset data = TokenDataset.Load(request.DatasetPath, request.Tokenization);
        if (request.Model.VocabSize < data.VocabSize)
            throw new ArgumentException($"Model {request.Model.Name} has vocab_size {request.Model.VocabSize}; {request.Tokenization} tokens need at least {data.VocabSize}.", nameof(request));
        string dir = Path.Combine(request.RunsRoot, request.Options.RunId);
        Directory.CreateDirectory(dir);
        RunFiles.WriteAtomic(Path.Combine(dir, "settings.json"), JsonSerializer.Serialize(new
        {
            run_id = request.Options.RunId,
            model = request.Model,
            settings = request.Settings,
            engine = request.Options,
            dataset = Path.GetFullPath(request.DatasetPath),
            tokenization = request.Tokenization,
            steps = request.Steps,
        }, DescriptionJson.Options));
        string metricsPath = Path.Combine(dir, "metrics.jsonl"), tracePath = Path.Combine(dir, "trace.jsonl");
        // A resumed run continues its folder's history; a fresh run starts it.
        if (request.ResumeFrom is null)
        {
            File.Delete(metricsPath);
            File.Delete(tracePath);
        }

        var steps = new List<StepMetrics>();
        string? error = null, lastCheckpoint = null, executor = null;
        try
        {
            using ITrainer trainer = Trainers.Create(request.Model, request.Settings, request.Options, request.SwapStore);
            executor = trainer.Executor;
            if (request.ResumeFrom is { } resume) trainer.RestoreCheckpoint(ResolveCheckpoint(resume));
            trainer.Trace.Drain();
            IoTotals before = trainer.Io.Snapshot();
            string checkpoints = Path.Combine(dir, "checkpoints");
            for (int s = trainer.CompletedSteps; s < request.Steps; s++)
            {
                if (cancel.IsCancellationRequested)
                {
                    if (request.SaveEvery is not null && steps.Count > 0) lastCheckpoint = trainer.SaveCheckpoint(checkpoints);
                    break;
                }
                int step = s;
                StepResult r = trainer.Step(micro => data.Sample(request.Options.Seed, step, micro, request.Settings.MicroBatch, request.Settings.SeqLen));
                IoTotals now = trainer.Io.Snapshot();
                IReadOnlyList<TraceSpan> spans = trainer.Trace.Drain();
                StepMetrics m = Measure(r, now.Minus(before), spans, trainer.DeviceMemory);
                before = now;
                steps.Add(m);
                RunFiles.AppendLine(metricsPath, JsonSerializer.Serialize(m, LineOptions));
                foreach (TraceSpan span in spans) RunFiles.AppendLine(tracePath, TraceLine(span));
                progress?.Report(m);
                if (request.SaveEvery is { } every && every > 0 && (s + 1) % every == 0) lastCheckpoint = trainer.SaveCheckpoint(checkpoints);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or InvalidDataException)
        {
            error = e.Message;
            WriteSummary(dir, request, steps, error, lastCheckpoint, executor, warnings);
            throw;
        }
        return WriteSummary(dir, request, steps, error, lastCheckpoint, executor, warnings);
    }

    /// <summary>A span as one JSON line: step, resource, operation, layer, start_ns, end_ns (from the run's start).</summary>
    private static string TraceLine(TraceSpan s) => JsonSerializer.Serialize(new
    {
        step = s.Step,
        micro_batch = s.MicroBatch,
        resource = s.Resource,
        operation = s.Operation,
        layer = s.Layer,
        start_ns = s.Start.Nanoseconds,
        end_ns = s.End.Nanoseconds,
        bytes = s.Bytes,
    }, LineOptions);

    private static StepMetrics Measure(StepResult r, IoTotals io, IReadOnlyList<TraceSpan> spans, DeviceMemory? device) => new()
    {
        Step = r.Step,
        Loss = r.Loss,
        Tokens = r.Tokens,
        WallMs = StepMetrics.Ms(r.Wall),
        ForwardMs = StepMetrics.Ms(r.Forward),
        BackwardMs = StepMetrics.Ms(r.Backward),
        OptimizerMs = StepMetrics.Ms(r.Optimizer),
        IoStallMs = StepMetrics.Ms(r.IoStall),
        TokensPerSecond = r.Wall.Nanoseconds > 0 ? r.Tokens / r.Wall.Seconds : 0,
        CpuReadBytes = io.CpuRead.Value,
        CpuWrittenBytes = io.CpuWritten.Value,
        NvmeReadBytes = io.NvmeRead.Value,
        NvmeWrittenBytes = io.NvmeWritten.Value,
        NvmeReadGBps = TraceStats.GBps(io.NvmeRead, TraceStats.Busy(spans, "nvme", s => !TraceStats.IsWrite(s))),
        NvmeWriteGBps = TraceStats.GBps(io.NvmeWritten, TraceStats.Busy(spans, "nvme", TraceStats.IsWrite)),
        UploadBytes = io.Uploaded.Value,
        DownloadBytes = io.Downloaded.Value,
        UploadGBps = TraceStats.GBps(io.Uploaded, TraceStats.Busy(spans, s => s.Operation == "param_upload")),
        ResidentBytes = ProcessMemory.Resident().Value,
        PeakResidentBytes = ProcessMemory.PeakResident().Value,
        PeakDeviceBytes = device?.TakeStepPeak().Value,
        LossScale = r.LossScale,
        SkippedStep = r.LossScale is null ? null : r.Skipped,
    };

    /// <summary>
    /// Refuses <see cref="EngineOptions.InitFrom"/> with <see cref="EngineRunRequest.ResumeFrom"/>, and opens the pretrained
    /// weights once (headers only) so a mismatch is reported before the run folder, the swap files or the model exist.
    /// </summary>
    private static IReadOnlyList<string> CheckInitFrom(EngineRunRequest request)
    {
        if (request.Options.InitFrom is not { } path) return [];
        if (request.ResumeFrom is not null)
            throw new ArgumentException("--init-from and --resume cannot be combined: a resumed run takes its weights and optimizer moments from the checkpoint, " +
                "which would replace the pretrained weights. Use --init-from to start a new run, --resume to continue one.", nameof(request));
        using var weights = Checkpoints.PretrainedWeights.Open(path, request.Model);
        return weights.Warnings;
    }

    /// <summary>A checkpoint folder as given, or the newest checkpoint of a run folder.</summary>
    private static string ResolveCheckpoint(string path)
    {
        if (File.Exists(Path.Combine(path, Checkpoints.Checkpoint.ManifestFile))) return path;
        return Checkpoints.Checkpoint.Latest(Path.Combine(path, "checkpoints"))
            ?? throw new InvalidDataException($"'{path}' is neither a checkpoint nor a run folder with checkpoints.");
    }

    private static RunSummary WriteSummary(string dir, EngineRunRequest request, List<StepMetrics> steps, string? error, string? lastCheckpoint, string? executor,
        IReadOnlyList<string> warnings)
    {
        List<StepMetrics> warm = steps.Count > 1 ? steps.Skip(1).ToList() : steps;
        double Mean(Func<StepMetrics, double> f) => warm.Count == 0 ? 0 : warm.Average(f);
        double[] walls = warm.Select(m => m.WallMs).Order().ToArray();
        var summary = new RunSummary
        {
            RunId = request.Options.RunId,
            Model = request.Model.Name,
            Executor = executor,
            Dataset = Path.GetFullPath(request.DatasetPath),
            StepsRequested = request.Steps,
            StepsCompleted = steps.Count == 0 ? 0 : steps[^1].Step,
            Completed = steps.Count > 0 && steps[^1].Step == request.Steps && error is null,
            LastCheckpoint = lastCheckpoint,
            FirstLoss = steps.Count > 0 ? steps[0].Loss : null,
            FinalLoss = steps.Count > 0 ? steps[^1].Loss : null,
            MedianStepMs = walls.Length == 0 ? 0 : walls[walls.Length / 2],
            MeanForwardMs = Mean(m => m.ForwardMs),
            MeanBackwardMs = Mean(m => m.BackwardMs),
            MeanOptimizerMs = Mean(m => m.OptimizerMs),
            MeanIoStallMs = Mean(m => m.IoStallMs),
            TokensPerSecond = warm.Sum(m => m.WallMs) > 0 ? warm.Sum(m => (double)m.Tokens) / (warm.Sum(m => m.WallMs) / 1e3) : 0,
            NvmeReadBytes = steps.Sum(m => m.NvmeReadBytes),
            NvmeWrittenBytes = steps.Sum(m => m.NvmeWrittenBytes),
            CpuReadBytes = steps.Sum(m => m.CpuReadBytes),
            CpuWrittenBytes = steps.Sum(m => m.CpuWrittenBytes),
            PeakResidentBytes = ProcessMemory.PeakResident().Value,
            PeakDeviceBytes = steps.Max(m => m.PeakDeviceBytes),
            GpuMemoryLimitBytes = request.Options.GpuMemoryLimit?.Value,
            Error = error,
            Warnings = warnings.Count > 0 ? warnings : null,
            HostHeap = Native.HostHeap.Mode,
        };
        RunFiles.WriteAtomic(Path.Combine(dir, "summary.json"), JsonSerializer.Serialize(summary, DescriptionJson.Options));
        return summary;
    }
}
