using System.CommandLine;
using System.Text.Json;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Runs;
using AiOs.Planner.Memory;
using AiOs.Planner.Planning;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios train</c>: run real training with the offload settings and record what it took.</summary>
public static class TrainCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions(required: false);
        var steps = new Option<int>("--steps") { Description = "Optimizer steps to run", Required = true };
        var dataset = new Option<string?>("--dataset-file") { Description = "Text file to train on, read as bytes (default: the bundled text)" };
        var tokenizer = new Option<Tokenization>("--tokenizer") { Description = "bytes (any model) | gpt2 (BPE; models with vocab_size ≥ 50257)", DefaultValueFactory = _ => Tokenization.Bytes, CustomParser = SettingsOptions.ParseEnum<Tokenization> };
        var device = new Option<string>("--device") { Description = "cpu|cuda", DefaultValueFactory = _ => "cpu" };
        var runsDir = new Option<string>("--runs-dir") { Description = "Folder that receives runs/<id>/", DefaultValueFactory = _ => "runs" };
        var runId = new Option<string?>("--run-id")
        {
            Description = $"Name of the run folder: letters, digits, '.', '_', '-', at most {RunId.MaxLength} (default: time and a random suffix; with --resume of a run under --runs-dir, that run's id)",
        };
        var seed = new Option<long>("--seed") { Description = "Seed of the initial weights (unless --init-from) and the data order", DefaultValueFactory = _ => 1234 };
        var lr = new LearningRateOptions();
        var clip = new Option<double?>("--clip-grad-norm") { Description = "Clip gradients to this norm (global with --schedule deepspeed, per layer with overlapped)" };
        var saveEvery = new Option<int?>("--save-every") { Description = "Write a checkpoint (safetensors, with checksums) every N steps and on Ctrl-C" };
        var resume = new Option<string?>("--resume") { Description = "Continue from a checkpoint folder, the newest checkpoint of a run folder, or of the run with this id under --runs-dir" };
        var force = new Option<bool>("--force") { Description = "Start even when the planner says the run does not fit this machine (host RAM, device memory, NVMe space)" };
        var stopGrace = new Option<int>("--stop-grace")
        {
            Description = "Seconds a run may take, after SIGINT/SIGTERM/SIGHUP, to finish its step, checkpoint and clean up before it ends without them (a second signal ends it at once)",
            DefaultValueFactory = _ => DefaultStopGraceSeconds,
        };
        var initFrom = new Option<string?>("--init-from")
        {
            Description = "Start from pretrained weights instead of the seeded initialisation: a .safetensors file, or a Hugging Face model folder " +
                "(model.safetensors, or model.safetensors.index.json and its shards) in GPT-2 or Llama naming; not with --resume",
        };
        var buffered = new Option<bool>("--buffered-swap") { Description = "Swap through the page cache instead of O_DIRECT (faster on small runs, but not what the drive does)" };
        var keep = new Option<bool>("--keep-swap-files") { Description = "Keep <nvme-path>/aios-<run id>/ after the run" };
        var json = new Option<bool>("--json") { Description = "Print the run summary as JSON on stdout" };
        var autoTune = new Option<bool>("--auto-tune") { Description = "Choose the settings with the tuner for --hardware first (flags given stay fixed where the tuner does not search them); the run folder records the choice and its reasons in tune.json" };
        var gpuLimit = SizeOption.CreateOptional("--gpu-memory-limit", "Device memory the run may use (e.g. 11G): the rest of the GPU is taken up front, to rehearse a smaller card; the planner checks the settings against it first");
        var deviceAdam = new Option<string>("--device-adam") { Description = "With nothing offloaded: fused (on CUDA one NVRTC-compiled kernel per layer, on the CPU the engine's vectorised CPU Adam in place) | torch-ops", DefaultValueFactory = _ => "fused" };
        deviceAdam.AcceptOnlyFromAmong("fused", "torch-ops");
        var noSwapChecksums = new Option<bool>("--no-swap-checksums") { Description = "Do not checksum NVMe swap pieces (on by default: each piece is hashed as it is written and verified on every read)" };
        var noCopyStream = new Option<bool>("--no-copy-stream") { Description = "On CUDA with parameters in CPU RAM: copy each layer on the default stream instead of uploading the next one on its own stream during compute" };
        var tuneEightBit = new Option<bool>("--allow-8bit-optimizer") { Description = "With --auto-tune: let candidates that offload the optimizer keep its state block-wise 8-bit, as `aios tune --allow-8bit-optimizer`" };
        var tuneMaxMicroBatch = new Option<int>("--tune-max-micro-batch") { Description = "Largest micro-batch --auto-tune may pick", DefaultValueFactory = _ => 8 };
        var serve = new Option<int?>("--serve")
        {
            Description = $"Serve the planning page on --runs-dir while the run trains, to watch it live (optional port, default {Server.ServeOptions.DefaultPort}; 0 picks a free one); it stops with the run",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("train", "Train a model with the given offload settings and record per-step metrics in runs/<id>/.");
        options.AddTo(command);
        lr.AddTo(command);
        foreach (Option o in new Option[] { steps, dataset, tokenizer, device, runsDir, runId, seed, clip, saveEvery, resume, initFrom, buffered, keep, json, autoTune, tuneMaxMicroBatch, tuneEightBit, gpuLimit, deviceAdam, noCopyStream, noSwapChecksums, force, stopGrace, serve }) command.Options.Add(o);
        command.SetAction(r =>
        {
            // Everything before this line (a wrapper script that execs aios, the .NET runtime, parsing) is the first phase.
            var prelude = Records.StartupPhaseClock.FromLaunch("launch to the command (a wrapper's work, .NET runtime, parsing)", Engine.Metrics.ProcessMemory.ResidentOrNull);
            if (string.IsNullOrWhiteSpace(r.GetValue(options.Model)))
                throw new DescriptionException("aios train needs --model (a bundled name such as tiny-gpt, or a path).");
            var schedule = lr.Build(r, r.GetValue(steps));
            if (r.GetValue(stopGrace) < 1) throw new DescriptionException($"--stop-grace {r.GetValue(stopGrace)}: must be at least 1 second.");
            string? id = RunIdFor(r.GetValue(runId), r.GetValue(resume), r.GetValue(runsDir)!);
            var built = options.BuildWithNotes(r);
            var settings = built.Settings;
            if (MemoryCentricTiling.EngineRefusal(settings) is { } refused) throw new DescriptionException(refused);
            // What the flags implied (infinity's NVMe defaults, a kept stage) is said, on stderr, before anything runs.
            foreach (string note in built.Notes) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
            var engine = new EngineOptions
            {
                Seed = r.GetValue(seed),
                InitFrom = r.GetValue(initFrom),
                Device = r.GetValue(device)!,
                Adam = new() { LearningRate = schedule.BaseLearningRate, Schedule = schedule },
                KeepSwapFiles = r.GetValue(keep),
                DirectIo = !r.GetValue(buffered),
                GpuMemoryLimit = r.GetValue(gpuLimit),
                FusedDeviceAdam = r.GetValue(deviceAdam) == "fused",
                CopyStream = !r.GetValue(noCopyStream),
                SwapChecksums = !r.GetValue(noSwapChecksums),
                Clipping = r.GetValue(clip) is { } max
                    ? new GradientClipping(max, settings.Schedule == Settings.StepSchedule.Overlapped ? ClipMode.PerUnit : ClipMode.GlobalNorm)
                    : null,
            };
            if (id is not null) engine = engine with { RunId = id };
            string swapDir = settings.NvmePath ?? Path.Combine(Path.GetFullPath(r.GetValue(runsDir)!), "nvme");
            var hardware = r.GetValue(options.Hardware) is { Length: > 0 } h ? Hardware.ProfileCatalog.Default.Load(h)
                : engine.Device == "cpu" ? DefaultCpuProfile(engine, settings, swapDir) : null;
            if (r.GetValue(options.Hardware) is not { Length: > 0 } && hardware is not null && !r.GetValue(json))
                io.Console.MarkupLineInterpolated($"No --hardware: predicting for {hardware.Name}: {hardware.Description}.");
            // infinity's default offload folder (not one the user named) falls back to CPU offload when it is unusable,
            // as the plan does; a folder the user gave is checked by the run itself and refused in check-nvme's words.
            if (hardware is not null && settings.UsesNvme && r.GetResult(options.NvmePath) is null && r.GetValue(options.SettingsFile) is null)
            {
                var folder = DefaultOffloadFolder.Validate(options.LoadModel(r), hardware, settings, mayCreate: true);
                settings = folder.Settings;
                if (folder.Note is { } note) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
                if (folder.Failed) return ExitCodes.Usage;
            }
            TuneResult? tuned = null;
            prelude.Mark("settings, model, profile, offload folder");
            if (r.GetValue(tuneEightBit) && !r.GetValue(autoTune))
                throw new DescriptionException("--allow-8bit-optimizer lets --auto-tune choose 8-bit optimizer state; without --auto-tune, ask for it with --optimizer-state 8bit.");
            if (r.GetValue(autoTune))
            {
                if (hardware is null) throw new DescriptionException("--auto-tune needs --hardware: a profile of the machine the run is on (aios calibrate writes one).");
                // On a CPU the tuner plans for the machine the run has: no GPU, whatever --hardware describes.
                // On a GPU it plans the card the run rehearses: --gpu-memory-limit holds the tuner's device as it holds the run's.
                var tuneFor = engine.Device == "cpu" ? RunCapacity.ThisMachine(hardware, engine, settings, LocalResources.Read(swapDir), includeDrive: true) with { Name = hardware.Name }
                    : Planning.GpuMemoryLimit.Apply(hardware, engine.GpuMemoryLimit);
                string? passedOver;
                (settings, tuned, passedOver) = AutoTune(options.LoadModel(r), tuneFor, settings with { NvmePath = swapDir }, engine, r.GetValue(tuneMaxMicroBatch), r.GetValue(tuneEightBit));
                if (!r.GetValue(json))
                {
                    io.Console.MarkupLineInterpolated($"Auto-tuned for {hardware.Name}: {Tuner.Describe(settings, hardware.HasGpu)}.");
                    if (passedOver is not null) io.Console.MarkupLineInterpolated($"  {passedOver}");
                    foreach (string line in tuned.Explanation) io.Console.MarkupLineInterpolated($"  {line}");
                }
                prelude.Mark("auto-tune");
            }
            // The head the engine runs, resolved once by Core's rule on the card planned here: the check, the run and its prediction share it.
            settings = EngineSettings.ResolveHeadLoss(options.LoadModel(r), settings, engine, hardware);
            if (!r.GetValue(force))
            {
                var problems = RunCapacity.Problems(options.LoadModel(r), settings, engine, hardware, LocalResources.Read(settings.UsesNvme ? settings.NvmePath : null));
                if (problems.Count > 0)
                {
                    io.Errors.MarkupLineInterpolated($"[red]error:[/] the run does not fit this machine, so nothing was started (--force starts it anyway):");
                    foreach (string problem in problems) io.Errors.MarkupLineInterpolated($"  {problem}");
                    return ExitCodes.Infeasible;
                }
            }
            prelude.Mark("head and capacity checks");
            var request = new EngineRunRequest
            {
                PreludePhases = prelude.Phases,
                Model = options.LoadModel(r),
                Settings = settings,
                Steps = r.GetValue(steps),
                DatasetPath = r.GetValue(dataset) ?? BundledText.DefaultPath,
                Tokenization = r.GetValue(tokenizer),
                Options = engine,
                RunsRoot = r.GetValue(runsDir)!,
                SaveEvery = r.GetValue(saveEvery),
                ResumeFrom = r.GetValue(resume),
                OnWarning = warning => io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}"),
            };
            // --gpus N: this process starts and supervises N ranks (the one the user ran), or is one of them (started by it).
            if ((settings.Nodes ?? 1) > 1)
                throw new DescriptionException($"--nodes {settings.Nodes}: aios train runs on one host. For several hosts, `aios launch --out DIR` writes a DeepSpeed launch of these settings.");
            var rank = RankEnvironment.Current();
            int world = settings.GpusPerNode ?? 1;
            if (world > 1 && engine.Device == "cpu" && hardware is not null)
            {
                // The planner plans GPUs; several CPU processes (for testing) have no profile to predict them on.
                hardware = null;
                if (rank is null) io.Errors.MarkupLineInterpolated($"[grey]note:[/] --gpus {world} on the CPU runs {world} processes (for testing); there is no prediction to compare with.");
            }
            var server = r.GetResult(serve) is null || rank is not null ? null : StartServer(io, r.GetValue(serve) ?? Server.ServeOptions.DefaultPort, request.RunsRoot);
            int code;
            try
            {
                if (rank is null && world > 1) code = TrainRanks.Launch(io, r, world, request);
                else
                {
                    using var group = rank is null ? null : TrainRanks.Join(rank, engine.Device);
                    if (rank is not null) request = TrainRanks.ForRank(request, rank, group!);
                    code = Execute(io, request, hardware, r.GetValue(json), TimeSpan.FromSeconds(r.GetValue(stopGrace)));
                }
            }
            finally
            {
                server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            if (tuned is not null && rank is null) WriteTuneRecord(Path.Combine(request.RunsRoot, request.Options.RunId), tuned, settings);
            return code;
        });
        return command;
    }

    /// <summary>
    /// Tunes with the simulator and takes the best candidate the engine can run (it refuses, for example,
    /// fp16); the accumulation the user set is the most the tuner may pick, and the micro-batch is searched up to
    /// --tune-max-micro-batch, so the global batch can change: tune.json and the console state the chosen one.
    /// </summary>
    /// <summary>
    /// Tunes for <paramref name="hardware"/> and takes the best candidate the engine can run on this machine, with a line saying
    /// why the tuner's best was passed over when it was (null when it was taken): the engine checks this host's free RAM, which
    /// a profile of another machine does not describe.
    /// </summary>
    private static (Settings.TrainingSettings, TuneResult, string?) AutoTune(Models.ModelSpec model, Hardware.HardwareProfile hardware,
        Settings.TrainingSettings fixedSettings, EngineOptions engine, int maxMicroBatch, bool allowEightBit)
    {
        var result = Tuner.Tune(new TuneRequest
        {
            Model = model, Hardware = hardware, Base = fixedSettings, Budget = 2_000,
            MaxGradAccumulation = fixedSettings.GradAccumulation, MaxMicroBatch = maxMicroBatch, AllowEightBitOptimizer = allowEightBit,
        });
        // Settings the tuner refuses outright (a --gpus the profile lacks, say) are named by their flags.
        if (result.Problems.Count > 0) throw new DescriptionException("--auto-tune: " + string.Join("; ", result.Problems));
        string? bestRefused = null;
        var chosen = Tuner.FirstAccepted(result, candidate =>
        {
            try
            {
                EngineSettings.Check(model, candidate, engine);
                return true;
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException)
            {
                bestRefused ??= e.Message;
                return false;
            }
        });
        string? passedOver = chosen is not null && bestRefused is not null && result.Best is { } best
            ? $"Not the tuner's best ({Tuner.Describe(best.Settings, hardware.HasGpu)}): {bestRefused} This is the fastest of its candidates the engine can run here."
            : null;
        if (chosen is not null) return (chosen.Settings, result, passedOver);
        throw new DescriptionException($"--auto-tune found no settings that both fit {hardware.Name} and the engine can run here" +
            (bestRefused is null ? ". " : $" (the best: {bestRefused}) ") + string.Join(" ", result.Explanation));
    }

    /// <summary>
    /// The run id: --run-id when given (checked, even when empty); else, resuming a run under --runs-dir, that run's id, so the
    /// run continues in its own folder; else null (a new id).
    /// </summary>
    private static string? RunIdFor(string? given, string? resume, string runsRoot)
    {
        if (given is not null)
        {
            try
            {
                return RunId.Check(given, "--run-id");
            }
            catch (ArgumentException e)
            {
                throw new DescriptionException(e.Message);
            }
        }
        try
        {
            return resume is null ? null : ResumeTarget.Resolve(runsRoot, resume).RunId;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException)
        {
            // The run reports a --resume that names nothing, after the checks that come first (--init-from with --resume).
            return null;
        }
    }

    /// <summary>Records the tuner's choice and reasons in the run folder (tune.json).</summary>
    private static void WriteTuneRecord(string dir, TuneResult result, Settings.TrainingSettings chosen)
    {
        if (!Directory.Exists(dir)) return;
        var record = new System.Text.Json.Nodes.JsonObject
        {
            ["chosen"] = JsonSerializer.SerializeToNode(chosen, DescriptionJson.Options),
            ["description"] = Tuner.Describe(chosen),
            ["explanation"] = new System.Text.Json.Nodes.JsonArray(result.Explanation.Select(l => (System.Text.Json.Nodes.JsonNode)System.Text.Json.Nodes.JsonValue.Create(l)!).ToArray()),
            ["alternatives"] = new System.Text.Json.Nodes.JsonArray(result.Alternatives.Select(a => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
            {
                ["description"] = Tuner.Describe(a.Settings), ["tokens_per_s"] = a.TokensPerSecond, ["bottleneck"] = a.Bottleneck,
            }).ToArray()),
            ["evaluated"] = result.Evaluated,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "tune.json"), DeepSpeed.DeepSpeedConfig.ToJson(record));
    }

    /// <summary>
    /// Without --hardware on a CPU: this machine (cores, available RAM, free space of the swap folder; no GPU) with the rates of
    /// the bundled CI profile, calibrated when present, which the caller says are uncalibrated here.
    /// </summary>
    private static Hardware.HardwareProfile? DefaultCpuProfile(EngineOptions engine, Settings.TrainingSettings settings, string swapDir)
    {
        var names = Hardware.ProfileCatalog.Default.Names();
        string? name = DefaultCpuMachine.RateProfiles.FirstOrDefault(names.Contains);
        return name is null ? null : DefaultCpuMachine.Build(Hardware.ProfileCatalog.Default.Load(name), Environment.ProcessorCount,
            Calibration.Machine.MachineFacts.NvidiaGpuCount(), engine, settings, LocalResources.Read(swapDir));
    }

    /// <summary>
    /// Default of --stop-grace: under the 30 s that Kubernetes and SLURM (KillWait) wait between SIGTERM and SIGKILL, so the run's
    /// own bound ends it first. docker stop waits only 10 s: pass --stop-grace 8 there (the interim summary is written at once anyway).
    /// </summary>
    private const int DefaultStopGraceSeconds = 25;

    /// <summary>
    /// <c>--serve</c>: <c>aios serve --runs RUNS_DIR</c> in this process (loopback only, NVMe folders inside the current
    /// one), started before the run so that a port in use stops nothing that began. Its line goes to stderr, so
    /// <c>--json</c> keeps stdout for the summary.
    /// </summary>
    private static Server.PlannerServer StartServer(CliIo io, int port, string runsRoot)
    {
        if (port is < 0 or > 65535) throw new DescriptionException($"--serve {port} is not a TCP port; give 1..65535 (or 0 for a free one).");
        Directory.CreateDirectory(runsRoot);
        var options = new Server.ServeOptions { Port = port, RunsFolder = Path.GetFullPath(runsRoot), NvmeRoots = [System.Environment.CurrentDirectory] };
        Server.PlannerServer server;
        try
        {
            server = Server.PlannerServer.StartAsync(options).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            throw new DescriptionException($"--serve {port}: cannot listen on 127.0.0.1:{port} ({e.Message}), so the run was not started; give another port (0 picks a free one).");
        }
        io.Errors.MarkupLineInterpolated($"Serving the runs in {options.RunsFolder} on [bold]{server.Address}[/] while the run trains (the runs tab shows it live).");
        return server;
    }

    private static int Execute(CliIo io, EngineRunRequest request, Hardware.HardwareProfile? hardware, bool json, TimeSpan grace)
    {
        using var stop = new RunStop();
        using var signals = new StopSignals(stop, grace, message =>
        {
            try
            {
                io.Errors.MarkupLineInterpolated($"[yellow]{message}[/]");
            }
            catch (IOException)
            {
                // After SIGHUP the terminal may be gone; the summary still says what happened.
            }
        }, signal => StopSignals.ExitNow(ExitCodes.ForSignal(signal)));
        var started = DateTime.UtcNow;
        int? firstStep = null;
        // With --json, stdout carries only the summary document, so step lines are not printed.
        IProgress<StepMetrics>? progress = json ? null : new LineProgress(m =>
        {
            // A resumed run starts past step 1: the rate counts only the steps this process ran.
            firstStep ??= m.Step;
            double elapsed = (DateTime.UtcNow - started).TotalSeconds;
            double eta = elapsed / (m.Step - firstStep.Value + 1) * (request.Steps - m.Step);
            io.Console.MarkupLineInterpolated($"step {m.Step}/{request.Steps}  loss {m.Loss:0.0000}  {m.TokensPerSecond:0} tok/s  {m.WallMs:0} ms  ETA {eta:0}s");
        });
        RunSummary summary;
        try
        {
            summary = EngineRun.Execute(request, progress, stop);
        }
        catch (CollectiveException e)
        {
            // Another rank failed or left: the launcher reports that rank's own error.
            io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.OtherRankFailed;
        }
        catch (Exception e) when (e is ArgumentException or IOException or NotSupportedException or InvalidOperationException or InvalidDataException)
        {
            io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.Usage;
        }
        string dir = Path.Combine(request.RunsRoot, request.Options.RunId);
        try
        {
            // Planned on the card the run rehearsed (its --gpu-memory-limit), as `report --hardware` plans it again.
            if (hardware is not null && Directory.Exists(dir))
                RunPrediction.Write(dir, request.Model, Planning.GpuMemoryLimit.Apply(hardware, request.Options.GpuMemoryLimit), request.Settings,
                    Calibration.Learning.LearnedCorrection.For(hardware));
            if (json) io.Stdout.Write(JsonSerializer.Serialize(summary, DescriptionJson.Options));
            else
            {
                if (summary.Error is { } error) io.Errors.MarkupLineInterpolated($"[red]error:[/] {error}");
                Render(io.Console, summary, dir);
                RenderComparison(io.Console, io.Errors, dir, hardware);
            }
        }
        catch (IOException) when (summary.StoppedBy == "SIGHUP")
        {
            // The terminal went away with the session; summary.json holds the result.
        }
        return ExitCodes.Of(summary);
    }

    private static void Render(IAnsiConsole console, RunSummary s, string dir)
    {
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddTextRow("steps", $"{s.StepsCompleted}/{s.StepsRequested}");
        if (s.Executor is { } executor) table.AddTextRow("executor", executor);
        table.AddRow("loss", $"{s.FirstLoss:0.0000} → {s.FinalLoss:0.0000}");
        table.AddRow("median step", $"{s.MedianStepMs:0.0} ms");
        if (s.StartupSeconds is { } startup)
            table.AddRow("start-up; first step", s.FirstStepRatio is { } ratio ? $"{startup:0.0} s; {ratio:0.00}× a later step" : $"{startup:0.0} s");
        if (s.StartupPhases is { Count: > 0 } phases)
            table.AddTextRow("start-up phases", string.Join("; ", phases.Select(p =>
                p.ResidentBytes is { } rss ? $"{p.Name} {p.Seconds:0.0} s (RSS {new Units.Bytes(rss)})" : $"{p.Name} {p.Seconds:0.0} s")));
        table.AddRow("forward / backward / optimizer", $"{s.MeanForwardMs:0.0} / {s.MeanBackwardMs:0.0} / {s.MeanOptimizerMs:0.0} ms");
        if (s.MeanHostPassMs is { } host)
            table.AddRow("host queueing the passes", PassesOnHost(host, s.MeanForwardMs + s.MeanBackwardMs));
        table.AddRow("waiting for I/O", $"{s.MeanIoStallMs:0.0} ms");
        table.AddRow("tokens/s", $"{s.TokensPerSecond:0}");
        table.AddRow("NVMe read / written", $"{new Units.Bytes(s.NvmeReadBytes)} / {new Units.Bytes(s.NvmeWrittenBytes)}");
        table.AddRow("peak RSS", $"{new Units.Bytes(s.PeakResidentBytes)}");
        if (s.PeakDeviceBytes is { } device)
            table.AddRow("peak device memory", s.GpuMemoryLimitBytes is { } limit ? $"{new Units.Bytes(device)} (limit {new Units.Bytes(limit)})" : $"{new Units.Bytes(device)}");
        if (s.LastCheckpoint is { } checkpoint) table.AddTextRow("last checkpoint", checkpoint);
        console.Write(table);
        console.MarkupLineInterpolated($"Run folder: {dir}");
    }

    /// <summary>
    /// The host's time queueing forward and backward beside the passes on the device's clock (its idle gaps included). No verdict:
    /// near the device's figure the host was the limit or kept pace with the device (on an H200, 2026-12-07, both gpt2-xl at
    /// micro-batch 1, which Nsight Compute shows launch-bound, and gpt2 at micro-batch 8, which it shows balanced, read within
    /// 3%); well below it, the device was the limit.
    /// </summary>
    internal static string PassesOnHost(double hostMs, double deviceMs) => $"{hostMs:0.0} ms (the passes on the device's clock: {deviceMs:0.0} ms)";

    /// <summary>Predicted against measured, per phase, per memory tier and per operation: Core's comparison of the run record now in the run folder.</summary>
    private static void RenderComparison(IAnsiConsole console, IAnsiConsole errors, string dir, Hardware.HardwareProfile? hardware)
    {
        if (hardware is null)
        {
            console.MarkupLine("No prediction: pass --hardware PROFILE (or calibrate this machine) to compare with the simulator.");
            return;
        }
        var comparison = RunComparison.Of(RecordedRun.Load(dir));
        if (comparison.Rows.Count == 0 && comparison.Tiers.Count == 0) return;
        string title = $"Predicted ({hardware.Name}) vs measured, mean of the steps after the first" + (comparison.Unreliable ? " (UNRELIABLE: see below)" : "");
        ComparisonRendering.WriteAll(console, comparison, title);
        if (comparison.SpreadLine is { } spread) console.MarkupLineInterpolated($"{spread}");
        if (comparison.Warning is { } warning) errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
        console.MarkupLineInterpolated($"Report: aios report {dir}");
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class LineProgress(Action<StepMetrics> onStep) : IProgress<StepMetrics>
    {
        public void Report(StepMetrics value)
        {
            try
            {
                onStep(value);
            }
            catch (IOException)
            {
                // A step line that cannot be printed (the terminal closed) must not end the run: the files record every step.
            }
        }
    }
}
