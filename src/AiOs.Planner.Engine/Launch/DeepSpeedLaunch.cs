using System.Globalization;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Launch;

/// <summary>What <c>aios launch</c> writes a DeepSpeed run for.</summary>
/// <param name="Model">The model (its config.json is written when <see cref="HfModel"/> is not given).</param>
/// <param name="DsConfig">The <c>ds_config.json</c> (from <see cref="DeepSpeedConfig.Build"/>): its batch sizes fix the world size.</param>
/// <param name="GpusPerNode">GPUs per node (the launcher's --num_gpus and the hostfile's slots).</param>
/// <param name="Nodes">Nodes (the launcher's --num_nodes and the hostfile's lines).</param>
/// <param name="SeqLen">Tokens per sequence.</param>
/// <param name="Steps">Optimizer steps the script runs.</param>
/// <param name="Summary">One line saying what the settings are, for the scripts' headers.</param>
public sealed record DeepSpeedLaunchRequest(ModelSpec Model, JsonObject DsConfig, int GpusPerNode, int Nodes, int SeqLen, int Steps, string Summary)
{
    /// <summary>DeepSpeed's default rendezvous port (TORCH_DISTRIBUTED_DEFAULT_PORT).</summary>
    public const int DefaultMasterPort = 29500;

    /// <summary>A Hugging Face model name or folder to fine-tune; null: train <see cref="Model"/> from random weights via its config.json.</summary>
    public string? HfModel { get; init; }

    /// <summary>The address of the node that runs rank 0; null: 127.0.0.1 on one node, the hostfile's first host on several.</summary>
    public string? MasterAddress { get; init; }

    /// <summary>The rendezvous port on the master node.</summary>
    public int MasterPort { get; init; } = DefaultMasterPort;
}

/// <summary>The files of a launch folder, by name, as text.</summary>
public sealed record DeepSpeedLaunchFiles(IReadOnlyDictionary<string, string> Files)
{
    public const string DsConfigName = "ds_config.json";
    public const string HostfileName = "hostfile";
    public const string LaunchName = "launch.sh";
    public const string TrainName = "train.py";
    /// <summary>The model's Hugging Face config, when the run trains from random weights.</summary>
    public const string ModelConfigName = "model/config.json";
}

/// <summary>
/// Builds what a user needs to run the tuned settings with DeepSpeed on one or many hosts: <c>ds_config.json</c>, a
/// <c>hostfile</c> template (DeepSpeed's <c>hostname slots=N</c> lines), <c>launch.sh</c> (the <c>deepspeed</c>
/// launcher's command line: --hostfile, --num_nodes, --num_gpus, --master_addr, --master_port) and <c>train.py</c>
/// (a Hugging Face causal LM trained through <c>deepspeed.initialize(config=…)</c> on a tiny synthetic dataset).
/// </summary>
public static class DeepSpeedLaunch
{
    /// <summary>The folder's files.</summary>
    /// <exception cref="ArgumentException">No --hf-model was given and the model has no Hugging Face family (the message says to give one).</exception>
    public static DeepSpeedLaunchFiles Build(DeepSpeedLaunchRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [DeepSpeedLaunchFiles.DsConfigName] = DeepSpeedConfig.ToJson(request.DsConfig),
            [DeepSpeedLaunchFiles.HostfileName] = Hostfile(request),
            [DeepSpeedLaunchFiles.LaunchName] = LaunchScript(request),
            [DeepSpeedLaunchFiles.TrainName] = DeepSpeedTrainScript.Text(request),
        };
        if (request.HfModel is null)
        {
            (WeightFamily? family, string? why) = PretrainedNames.FamilyFor(request.Model);
            if (family is null)
                throw new ArgumentException($"{request.Model.Name} has no Hugging Face config to train from ({why}): give --hf-model NAME (a Hugging Face model id or folder) for train.py to load.");
            files[DeepSpeedLaunchFiles.ModelConfigName] = HuggingFaceConfigWriter.For(request.Model, family.Value).ToJsonString(new() { WriteIndented = true }) + "\n";
        }
        return new DeepSpeedLaunchFiles(files);
    }

    /// <summary>The world size the config's batch sizes were built for: train_batch_size / (micro × accumulation).</summary>
    public static int WorldSize(JsonObject dsConfig)
    {
        ArgumentNullException.ThrowIfNull(dsConfig);
        long total = (long)dsConfig["train_batch_size"]!, micro = (long)dsConfig["train_micro_batch_size_per_gpu"]!, steps = (long)dsConfig["gradient_accumulation_steps"]!;
        return (int)(total / (micro * steps));
    }

    private static string Hostfile(DeepSpeedLaunchRequest r)
    {
        // DeepSpeed's runner reads "hostname slots=N" per line (older versions reject anything else, comments included),
        // so the explanation lives in launch.sh, not here.
        if (r.Nodes == 1) return $"localhost slots={r.GpusPerNode}\n";
        return string.Concat(Enumerable.Range(1, r.Nodes).Select(i => $"node-{i} slots={r.GpusPerNode}\n"));
    }

    private static string LaunchScript(DeepSpeedLaunchRequest r)
    {
        int world = r.GpusPerNode * r.Nodes;
        string master = r.MasterAddress ?? (r.Nodes == 1 ? "127.0.0.1" : "node-1");
        string model = r.HfModel is { } hf ? $"--hf-model {Quote(hf)}" : "--model-config model";
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        return I($$"""
            #!/usr/bin/env bash
            # Written by `aios launch` for {{r.Model.Name}}: {{r.Summary}}.
            # {{r.Nodes}} node(s) x {{r.GpusPerNode}} GPU(s) = {{world}} ranks. DeepSpeed checks at start that
            # train_batch_size = train_micro_batch_size_per_gpu x gradient_accumulation_steps x ranks; in ds_config.json:
            # {{r.DsConfig["train_batch_size"]}} = {{r.DsConfig["train_micro_batch_size_per_gpu"]}} x {{r.DsConfig["gradient_accumulation_steps"]}} x {{world}}. Run exactly this many ranks
            # (for another count, rerun `aios launch` with --gpus/--nodes).
            #
            # Several nodes: put each node's hostname in ./hostfile (one line each, "hostname slots=GPUS"), make this
            # folder the same path on every node, allow passwordless ssh from this node to the others (DeepSpeed starts
            # them with pdsh), and set MASTER_ADDR to this node's address if the first host is not reachable by that name.
            # Requirements on every node: pip install torch deepspeed transformers.
            set -euo pipefail
            cd "$(dirname "$0")"
            MASTER_ADDR="${MASTER_ADDR:-{{master}}}"
            MASTER_PORT="${MASTER_PORT:-{{r.MasterPort}}}"
            exec deepspeed --hostfile=hostfile --num_nodes={{r.Nodes}} --num_gpus={{r.GpusPerNode}} \
                --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
                train.py --deepspeed_config ds_config.json {{model}} --steps {{r.Steps}} --seq-len {{r.SeqLen}} "$@"

            """);
    }

    /// <summary>A shell word that stays one argument.</summary>
    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
