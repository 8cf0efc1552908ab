using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Runs;
using AiOs.Planner.Models;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
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
    /// <summary>
    /// A checkpoint folder, a run folder whose newest checkpoint is used, or the id of a run under <see cref="RunsRoot"/>, to continue from;
    /// <see cref="Steps"/> counts from the start of the original run. With the same run id the run continues in that run's folder.
    /// </summary>
    public string? ResumeFrom { get; init; }
    /// <summary>Told each warning before training starts (for example pretrained tensors the model does not use); summary.json records them too.</summary>
    public Action<string>? OnWarning { get; init; }
    /// <summary>
    /// The collectives of a data-parallel group when this process is one of several ranks (see <see cref="Execution.DataParallel"/>);
    /// every rank runs the same request apart from its run folder, and they agree each step on whether to stop.
    /// </summary>
    public Collectives.ICollectives? Ranks { get; init; }
    /// <summary>Where checkpoints go; null: <c>checkpoints/</c> in the run folder. Every rank of a group names the same folder.</summary>
    public string? CheckpointsFolder { get; init; }
    /// <summary>A rank above 0 of a group: rank 0's run folder (the group's run, whose checkpoints this rank resumes from); null otherwise.</summary>
    public string? GroupFolder { get; init; }
    /// <summary>Phases the caller spent before the run (tuning, checks), recorded first among the start-up's phases and taken out of "launch to trainer".</summary>
    public IReadOnlyList<Records.StartupPhase> PreludePhases { get; init; } = [];
}

/// <summary>
/// Library entry point for a measured training run: checks the request, trains with
/// <see cref="LayerwiseTrainer"/>, and writes <c>runs/&lt;id&gt;/</c>: <c>settings.json</c> (first),
/// <c>metrics.jsonl</c> (a line per step, as it finishes), <c>trace.jsonl</c> (spans, per step) and
/// <c>summary.json</c> (last, also after cancellation, divergence or failure). Whole files are replaced atomically.
/// </summary>
/// <remarks>
/// Everything that can be checked is checked before the run folder exists. The folder is then locked
/// (<see cref="RunFolder"/>) before anything in it is read or written, so two processes never share one; a folder
/// that already holds a run is refused unless this run resumes from one of its checkpoints, and then the lines
/// after that checkpoint's step are dropped so the history continues without repeated steps.
/// A step whose loss or gradients are not finite (outside fp16, whose loss scaler skips such steps) is not applied;
/// the run stops with an error naming the step, writes no checkpoint after it, and keeps the last good one.
/// </remarks>
public static class EngineRun
{
    /// <summary>Runs the request; <paramref name="progress"/> sees each step's metrics. Returns the summary it wrote.</summary>
    public static RunSummary Execute(EngineRunRequest request, IProgress<StepMetrics>? progress = null, CancellationToken cancel = default) =>
        Execute(request, progress, stop: null, cancel);

    /// <summary>
    /// Runs the request; <paramref name="stop"/> (a signal handler's) ends it after the step in progress, with a checkpoint
    /// when <see cref="EngineRunRequest.SaveEvery"/> is set, and can write the summary from another thread meanwhile.
    /// Returns the summary it wrote.
    /// </summary>
    public static RunSummary Execute(EngineRunRequest request, IProgress<StepMetrics>? progress, RunStop? stop, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        double? engineStart = StartupPhaseClock.SinceLaunch();
        RunRequestCheck.Check(request);
        EngineSettings.Check(request.Model, request.Settings, request.Options);
        IReadOnlyList<string> warnings = [.. CheckInitFrom(request), .. CheckSwapStorage(request)];
        foreach (string w in warnings) request.OnWarning?.Invoke(w);
        TokenDataset data = TokenDataset.Load(request.DatasetPath, request.Tokenization);
        if (request.Model.VocabSize < data.VocabSize)
            throw new ArgumentException($"Model {request.Model.Name} has vocab_size {request.Model.VocabSize}; {request.Tokenization} tokens need at least {data.VocabSize}.", nameof(request));
        string? checkpoint = request.ResumeFrom is { } resume ? ResumeTarget.Resolve(request.RunsRoot, resume).Checkpoint : null;
        // Rank 0 opens the group's run folder before the other ranks make theirs inside it, so it never sees them as another run's files.
        bool follower = request.Ranks is { WorldSize: > 1, Rank: > 0 };
        if (follower) request.Ranks!.Barrier();
        using RunFolder folder = RunFolder.Open(request.RunsRoot, request.Options.RunId, checkpoint, request.GroupFolder);
        if (request.Ranks is { WorldSize: > 1, Rank: 0 }) request.Ranks.Barrier();
        string dir = Path.Combine(request.RunsRoot, request.Options.RunId);
        RunFiles.WriteAtomic(Path.Combine(dir, RecordedRun.SettingsFile), JsonSerializer.Serialize(SettingsRecord(request, checkpoint), RecordSchema.WriteOptions));
        string metricsPath = Path.Combine(dir, RecordedRun.MetricsFile), tracePath = Path.Combine(dir, RecordedRun.TraceFile);

        var record = new RunRecord(dir, request, warnings);
        record.StartupPhases(request.PreludePhases, engineStart, "runtime and the caller, the rest", "runtime and the caller");
        using var stopped = CancellationTokenSource.CreateLinkedTokenSource(cancel, stop?.Token ?? CancellationToken.None);
        stop?.Attach(error =>
        {
            record.StoppedBy(stop.Reason);
            return record.WriteSummary(error);
        });
        try
        {
            string? error = Train(request, data, checkpoint, folder, record, metricsPath, tracePath, progress, stop, engineStart, stopped.Token);
            return record.WriteSummary(error);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or InvalidDataException)
        {
            try
            {
                record.WriteSummary(e.Message);
            }
            catch (IOException se)
            {
                // A full disk that broke the trace usually breaks the summary too: keep the first error, name both.
                throw new IOException($"{e.Message} (summary.json could not be written either: {se.Message})", e);
            }
            throw;
        }
        finally
        {
            stop?.Attach(null);
        }
    }

    /// <summary>The step loop; returns the error that ended the run early (a non-finite step), or null.</summary>
    private static string? Train(EngineRunRequest request, TokenDataset data, string? checkpoint, RunFolder folder, RunRecord record,
        string metricsPath, string tracePath, IProgress<StepMetrics>? progress, RunStop? stop, double? engineStart, CancellationToken cancel)
    {
        if (StartupPhaseClock.SinceLaunch() is { } launched && engineStart is { } atEngine)
            record.StartupPhase("checks, data, run folder", Math.Max(0, launched - atEngine));
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        using ITrainer trainer = Trainers.Create(request.Model, request.Settings, request.Options, request.SwapStore, request.Ranks);
        record.StartupPhases(trainer.StartupPhases, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds, "trainer, the rest", "trainer");
        // Each kernel kind's first use happens here, in the start-up, not in the first step (a batch of the step's shapes).
        if (KernelWarmUp.Enabled)
            record.StartupPhase("kernel warm-up", trainer.WarmUp(data.Sample(request.Options.Seed, trainer.CompletedSteps, 0, request.Settings.MicroBatch, request.Settings.SeqLen)));
        record.Started(trainer.Executor);
        if (checkpoint is not null)
        {
            trainer.RestoreCheckpoint(checkpoint);
            folder.KeepStepsUpTo(trainer.CompletedSteps);
        }
        trainer.Trace.Drain();
        trainer.Trace.TakeHostPassTime();
        IoTotals before = trainer.Io.Snapshot();
        string checkpoints = request.CheckpointsFolder ?? Path.Combine(Path.GetDirectoryName(metricsPath)!, "checkpoints");
        StepProgram? program = trainer switch { LayerwiseTrainer l => l.Program, DeviceTrainer d => d.Program, _ => null };
        for (int s = trainer.CompletedSteps; s < request.Steps; s++)
        {
            // Ranks stop together: one asked to stop (a signal, Ctrl-C) stops them all after the same step.
            if (AnyRank(cancel.IsCancellationRequested, request.Ranks))
            {
                record.StoppedBy(stop?.Reason ?? "cancelled");
                if (request.SaveEvery is not null && record.Count > 0) record.Checkpointed(trainer.SaveCheckpoint(checkpoints));
                break;
            }
            int step = s;
            bool profiled = ProfiledStep == step + 1 && trainer.DeviceMemory is not null && Profile(true);
            StepResult r;
            try
            {
                r = trainer.Step(micro => data.Sample(request.Options.Seed, step, micro, request.Settings.MicroBatch, request.Settings.SeqLen));
            }
            finally
            {
                if (profiled) Profile(false);
            }
            IoTotals now = trainer.Io.Snapshot();
            IReadOnlyList<TraceSpan> spans = trainer.Trace.Drain();
            StepMetrics m = Measure(r, now.Minus(before), spans, trainer.DeviceMemory) with
            {
                NvmeSwapBytes = SwapBytes(request),
                HostPassMs = trainer.Trace.TakeHostPassTime() is { } host ? StepMetrics.Ms(host) : null,
            };
            before = now;
            RunFiles.AppendLine(metricsPath, JsonSerializer.Serialize(m, RecordSchema.LineOptions));
            foreach (TraceSpan span in spans) RunFiles.AppendLine(tracePath, JsonSerializer.Serialize(Span(span, program), RecordSchema.LineOptions));
            if (r.NonFinite is { } what)
            {
                // The update was not applied and nothing is saved after this step: the last checkpoint stays the last good state.
                record.Diverged(r.Step);
                return NonFiniteMessage(request, r.Step, what, record);
            }
            record.Add(m);
            progress?.Report(m);
            if (request.SaveEvery is { } every && (s + 1) % every == 0) record.Checkpointed(trainer.SaveCheckpoint(checkpoints));
        }
        // Under the delayed schedule the last step's update is still pending: the run's weights (export, evaluation) include it.
        if (trainer is LayerwiseTrainer layerwise) layerwise.ApplyPendingUpdate();
        return null;
    }

    /// <summary>
    /// <c>AIOS_CUDA_PROFILE_STEP=N</c>: on a GPU, step N (from 1) alone is collected by a profiler started with collection off,
    /// e.g. <c>ncu --profile-from-start off</c> for every kernel of one step (launch counts and device times, issue 16).
    /// </summary>
    private static readonly int? ProfiledStep =
        int.TryParse(Environment.GetEnvironmentVariable("AIOS_CUDA_PROFILE_STEP"), out int n) && n > 0 ? n : null;

    /// <summary>Starts or stops the profiler's collection; a diagnostic, so a driver that refuses only warns.</summary>
    private static bool Profile(bool on)
    {
        try
        {
            Native.CudaDriver.Profile(on);
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or System.Runtime.InteropServices.ExternalException or DllNotFoundException or EntryPointNotFoundException)
        {
            Console.Error.WriteLine($"warning: AIOS_CUDA_PROFILE_STEP: {e.Message}; the step runs without the profiler's bracket.");
            return false;
        }
    }

    /// <summary>Whether <paramref name="mine"/> holds on any rank of the group (a collective: every rank asks at the same point); <paramref name="mine"/> alone without one.</summary>
    private static bool AnyRank(bool mine, Collectives.ICollectives? ranks)
    {
        if (ranks is not { WorldSize: > 1 }) return mine;
        double[] flag = [mine ? 1 : 0];
        DataParallel.SumInPlace(flag, ranks);
        return flag[0] > 0;
    }

    /// <summary>Names the step, what diverged, what to change, and where to continue from.</summary>
    private static string NonFiniteMessage(EngineRunRequest request, int step, string what, RunRecord record)
    {
        string lr = request.Options.Adam.LearningRate.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
        string last = Checkpoints.Checkpoint.Latest(Path.Combine(request.RunsRoot, request.Options.RunId, "checkpoints")) is { } good
            ? $"The last good checkpoint is {good}: continue from it with --resume {good}."
            : "No checkpoint was written before it (--save-every N keeps some).";
        string clip = request.Options.Clipping is null ? ", add --clip-grad-norm 1.0" : "";
        return $"Step {step}: {what} is not a finite number, so training stopped without applying that step's update. " +
            $"Lower --lr (now {lr}){clip}, or use --precision fp16, whose loss scaling skips such steps. {last}";
    }

    /// <summary>
    /// The check <c>aios check-nvme</c> makes, run on the swap folder before anything exists: a folder that cannot hold
    /// the swap files (tmpfs, too little space, not writable) is refused in check-nvme's words; its warnings (for example
    /// stale swap data of dead runs, which <c>aios clean</c> removes) are returned for the run to print and record.
    /// </summary>
    private static IReadOnlyList<string> CheckSwapStorage(EngineRunRequest request)
    {
        TrainingSettings s = request.Settings;
        if (!s.UsesNvme || s.NvmePath is not { Length: > 0 } path) return [];
        // Only capacities matter for the swap files' size, so this machine's stand-in profile does.
        var machine = RunCapacity.ThisMachine(null, request.Options, s, LocalResources.Read(path));
        var check = global::AiOs.Planner.Storage.NvmeCheck.Check(path, global::AiOs.Planner.Memory.MemoryPlanner.Plan(request.Model, machine, s).Nvme.Items, request.Options.DirectIo);
        check.ThrowIfUnusable();
        return check.Warnings;
    }

    /// <summary>The record's <c>settings.json</c> of <paramref name="request"/>: the settings as a whole, the engine's options as they serialise.</summary>
    internal static RunSettingsRecord SettingsRecord(EngineRunRequest request, string? checkpoint) => new()
    {
        Schema = RecordSchema.Current,
        RunId = request.Options.RunId,
        Model = request.Model,
        Settings = request.Settings,
        Engine = JsonSerializer.SerializeToElement(request.Options, RecordSchema.WriteOptions),
        Dataset = Path.GetFullPath(request.DatasetPath),
        Tokenization = JsonNamingPolicy.SnakeCaseLower.ConvertName(request.Tokenization.ToString()),
        Steps = request.Steps,
        ResumedFrom = checkpoint,
    };

    /// <summary>
    /// A trace span as the record's span (one line of <c>trace.jsonl</c>). The operation id is the step program's
    /// (−1 for spans outside it: stalls); the phase is that operation's in <paramref name="program"/>
    /// (the trainer's), so Core's comparison groups measured spans by phase as it does predicted ones; null without an operation.
    /// </summary>
    internal static SpanRecord Span(TraceSpan s, StepProgram? program = null) => new()
    {
        OpId = s.OpId,
        Phase = program is not null && s.OpId >= 0 && s.OpId < program.Ops.Count && program.Ops[s.OpId].Id == s.OpId
            ? program.Ops[s.OpId].Phase.ToString().ToLowerInvariant() : null,
        Step = s.Step,
        MicroBatch = s.MicroBatch,
        Resource = s.Resource,
        Operation = s.Operation,
        Layer = s.Layer,
        StartNs = s.Start.Nanoseconds,
        EndNs = s.End.Nanoseconds,
        Bytes = s.Bytes,
    };

    /// <summary>Bytes of this run's swap files (<c>&lt;nvme-path&gt;/aios-&lt;run id&gt;/</c>) now; null without NVMe offload or before the folder exists.</summary>
    private static long? SwapBytes(EngineRunRequest request)
    {
        if (!request.Settings.UsesNvme || request.Settings.NvmePath is not { Length: > 0 } root) return null;
        var folder = new DirectoryInfo(Path.Combine(root, "aios-" + request.Options.RunId));
        try
        {
            return folder.Exists ? folder.EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A figure for the report, not worth failing a step over.
            return null;
        }
    }

    private static StepMetrics Measure(StepResult r, IoTotals io, IReadOnlyList<TraceSpan> spans, DeviceMemory? device) => new()
    {
        Step = r.Step,
        Loss = r.Loss,
        Tokens = r.Tokens,
        LearningRate = r.LearningRate,
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
        // Uploaded bytes include activation checkpoints coming back (--offload-activations cpu): their busy time too.
        UploadGBps = TraceStats.GBps(io.Uploaded, TraceStats.Busy(spans, s => s.Operation is "param_upload" or "activation_fetch")),
        ResidentBytes = ProcessMemory.Resident().Value,
        PeakResidentBytes = ProcessMemory.PeakResident().Value,
        PeakDeviceBytes = device?.TakeStepPeak().Value,
        LossScale = r.LossScale,
        SkippedStep = r.LossScale is null ? null : r.Skipped,
        NonFinite = r.NonFinite,
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
}
