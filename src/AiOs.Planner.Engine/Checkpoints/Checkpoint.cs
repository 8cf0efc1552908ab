using System.Security.Cryptography;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>What a checkpoint folder's <c>checkpoint.json</c> records.</summary>
/// <param name="Step">Optimizer steps completed.</param>
/// <param name="Seed">The run's seed (weights and data order).</param>
/// <param name="Model">The model's name.</param>
/// <param name="Sha256">SHA-256 (hex) of each data file, by file name.</param>
public sealed record CheckpointManifest(int Step, long Seed, string Model, IReadOnlyDictionary<string, string> Sha256)
{
    /// <summary>fp16 runs: the loss scaler's state, so a resumed run scales, skips and bias-corrects as the original did.</summary>
    public Execution.LossScaleState? LossScale { get; init; }

    /// <summary>
    /// How <c>optimizer.safetensors</c> holds the moments: <c>8bit</c> (block-wise, see <see cref="OptimizerStateTensors"/>);
    /// absent for fp32, so fp32 manifests read as before and an older reader refuses an 8-bit one instead of misreading it.
    /// </summary>
    public string? OptimizerState { get; init; }

    /// <summary>
    /// Sharded checkpoints (<see cref="ShardedCheckpoint"/>): the number of ranks whose shard files the folder holds; absent for a
    /// single-process checkpoint, so those read as before and an older reader refuses a sharded one instead of misreading it.
    /// </summary>
    public int? WorldSize { get; init; }

    /// <summary>
    /// Sharded checkpoints: the order of the slices inside each layer's buffer, whose raw ranges the shard files hold.
    /// <see cref="ParameterLayout.CurrentLayerOrder"/> since 2026-12-06 (q, k and v's weights, then their biases); absent for the
    /// order before (each weight followed by its bias), which <see cref="ShardedCheckpoint"/> reads back by name.
    /// </summary>
    public int? LayerOrder { get; init; }
}

/// <summary>fp32 master weights and both Adam moments of one unit.</summary>
public sealed record UnitState(float[] Master, float[] ExpAvg, float[] ExpAvgSq);

/// <summary>
/// Checkpoints as folders <c>step-&lt;N&gt;/</c> holding <c>model.safetensors</c> (fp32 master weights,
/// named <c>layers.&lt;i&gt;.attn.q.weight</c> …, <c>tok.weight</c> …), <c>optimizer.safetensors</c>
/// (<c>exp_avg.…</c>, <c>exp_avg_sq.…</c>) and <c>checkpoint.json</c> with checksums. A checkpoint is
/// written into <c>step-&lt;N&gt;.partial/</c> and renamed when complete, so a crash never leaves a
/// half checkpoint under the final name; loading verifies every checksum. With 8-bit optimizer state the moments
/// are stored block-wise quantised (<see cref="OptimizerStateTensors"/>) and the manifest says so; loading such a
/// checkpoint dequantises them to fp32.
/// </summary>
public static class Checkpoint
{
    public const string ModelFile = "model.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string ManifestFile = "checkpoint.json";

    /// <summary>Writes the checkpoint of <paramref name="step"/> under <paramref name="root"/>; returns its folder.</summary>
    /// <remarks>With <paramref name="optimizerState"/> 8-bit, each tensor's moments are quantised in blocks from its first element.</remarks>
    public static string Save(string root, ModelSpec spec, int step, long seed, Func<int, UnitState> stateOf, Execution.LossScaleState? lossScale = null,
        OptimizerStateFormat optimizerState = OptimizerStateFormat.Fp32)
    {
        string final = Path.Combine(root, $"step-{step}"), partial = final + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);
        var weights = new List<(string, long[], float[])>();
        var moments = new List<(string, long[], float[])>();
        var encoded = new List<RawTensor>();
        for (int u = 0; u <= spec.NumLayers; u++)
        {
            UnitState state = stateOf(u);
            foreach (var (name, slice) in Names(spec, u))
            {
                weights.Add((name, slice.Shape, Slice(state.Master, slice)));
                if (optimizerState == OptimizerStateFormat.Fp32)
                {
                    moments.Add(("exp_avg." + name, slice.Shape, Slice(state.ExpAvg, slice)));
                    moments.Add(("exp_avg_sq." + name, slice.Shape, Slice(state.ExpAvgSq, slice)));
                }
                else encoded.AddRange(OptimizerStateTensors.Encode(name, slice.Shape, Slice(state.ExpAvg, slice), Slice(state.ExpAvgSq, slice), optimizerState));
            }
        }
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["step"] = step.ToString(), ["model"] = spec.Name };
        SafeTensors.Write(Path.Combine(partial, ModelFile), weights, meta);
        if (optimizerState == OptimizerStateFormat.Fp32) SafeTensors.Write(Path.Combine(partial, OptimizerFile), moments, meta);
        else SafeTensors.WriteRaw(Path.Combine(partial, OptimizerFile), encoded, meta.Concat(OptimizerStateTensors.EightBitMetadata).ToDictionary());
        var manifest = new CheckpointManifest(step, seed, spec.Name, new Dictionary<string, string>
        {
            [ModelFile] = Hash(Path.Combine(partial, ModelFile)),
            [OptimizerFile] = Hash(Path.Combine(partial, OptimizerFile)),
        })
        { LossScale = lossScale, OptimizerState = optimizerState == OptimizerStateFormat.Fp32 ? null : optimizerState.Name() };
        File.WriteAllText(Path.Combine(partial, ManifestFile), JsonSerializer.Serialize(manifest, DescriptionJson.Options));
        // Replace an older checkpoint of the same step without a moment where neither exists:
        // set the old one aside, move the new one in, then drop the old one.
        string old = final + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(final)) Directory.Move(final, old);
        Directory.Move(partial, final);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        return final;
    }

    /// <summary>
    /// Reads and verifies a checkpoint folder for <paramref name="spec"/>: manifest, checksums, every tensor. A sharded folder
    /// (<see cref="ShardedCheckpoint"/>) gives the same full units, assembled from every rank's files.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is incomplete, corrupted, or for another model.</exception>
    public static (CheckpointManifest Manifest, UnitState[] Units) Load(string folder, ModelSpec spec)
    {
        string manifestPath = Path.Combine(folder, ManifestFile);
        if (!File.Exists(manifestPath)) throw new InvalidDataException($"'{folder}' is not a checkpoint: {ManifestFile} is missing.");
        CheckpointManifest manifest = DescriptionJson.Parse<CheckpointManifest>(File.ReadAllText(manifestPath), manifestPath);
        if (manifest.Model != spec.Name)
            throw new InvalidDataException($"Checkpoint '{folder}' is for model {manifest.Model}, not {spec.Name}.");
        OptimizerStateFormat format = FormatOf(manifest, manifestPath);
        // A sharded folder is read as one rank of a world of one: its shards are then the whole units, padding-free.
        if (manifest.WorldSize is not null) return (manifest, ShardedCheckpoint.Read(folder, manifest, spec, rank: 0, worldSize: 1));
        foreach (string file in new[] { ModelFile, OptimizerFile }) Verify(folder, manifest, file);
        var weights = SafeTensors.Read(Path.Combine(folder, ModelFile));
        var moments = format == OptimizerStateFormat.Fp32 ? SafeTensors.Read(Path.Combine(folder, OptimizerFile)) : null;
        using SafeTensorsFile? quantised = format == OptimizerStateFormat.Fp32 ? null : SafeTensorsFile.Open(Path.Combine(folder, OptimizerFile));
        if (quantised is not null) OptimizerStateTensors.CheckEightBitMetadata(quantised);
        var units = new UnitState[spec.NumLayers + 1];
        for (int u = 0; u < units.Length; u++)
        {
            ParameterLayout layout = u == spec.NumLayers ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec);
            var state = new UnitState(new float[layout.Elements], new float[layout.Elements], new float[layout.Elements]);
            foreach (var (name, slice) in Names(spec, u))
            {
                Place(weights, name, slice, state.Master, folder);
                if (moments is not null)
                {
                    Place(moments, "exp_avg." + name, slice, state.ExpAvg, folder);
                    Place(moments, "exp_avg_sq." + name, slice, state.ExpAvgSq, folder);
                    continue;
                }
                var (m, v) = OptimizerStateTensors.Decode(quantised!, name, slice.Elements, format)
                    ?? throw new InvalidDataException($"Checkpoint '{folder}' lacks the 8-bit moments of {name} (exp_avg_q8.{name}, exp_avg_scales.{name} …).");
                m.CopyTo(state.ExpAvg, slice.Offset);
                v.CopyTo(state.ExpAvgSq, slice.Offset);
            }
            units[u] = state;
        }
        return (manifest, units);
    }

    /// <summary>The optimizer-state format a manifest names (absent: fp32).</summary>
    /// <exception cref="InvalidDataException">It names a format this version does not know.</exception>
    public static OptimizerStateFormat FormatOf(CheckpointManifest manifest, string manifestPath)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return manifest.OptimizerState is null ? OptimizerStateFormat.Fp32
            : OptimizerStateFormats.Parse(manifest.OptimizerState)
              ?? throw new InvalidDataException($"{manifestPath}: optimizer_state is '{manifest.OptimizerState}'; this version reads fp32 (field absent) or 8bit.");
    }

    /// <summary>Checks that <paramref name="file"/> of the checkpoint exists and matches the manifest's checksum.</summary>
    /// <exception cref="InvalidDataException">It is missing or its checksum differs.</exception>
    internal static void Verify(string folder, CheckpointManifest manifest, string file)
    {
        string path = Path.Combine(folder, file);
        if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{folder}' is incomplete: {file} is missing.");
        if (!manifest.Sha256.TryGetValue(file, out string? expected) || Hash(path) != expected)
            throw new InvalidDataException($"Checkpoint '{folder}' is corrupted: the checksum of {file} does not match {ManifestFile}.");
    }

    /// <summary>The newest complete checkpoint folder under <paramref name="root"/>, or null.</summary>
    public static string? Latest(string root) =>
        !Directory.Exists(root) ? null : Directory.GetDirectories(root, "step-*")
            .Where(d => !d.EndsWith(".partial", StringComparison.Ordinal) && File.Exists(Path.Combine(d, ManifestFile)))
            .OrderByDescending(d => int.TryParse(Path.GetFileName(d)["step-".Length..], out int n) ? n : -1)
            .FirstOrDefault();

    /// <summary>The file names of unit <paramref name="unit"/>'s tensors (<c>layers.&lt;i&gt;.…</c>, or the outer block's own names) and where each lies in the unit.</summary>
    internal static IEnumerable<(string Name, ParameterSlice Slice)> Names(ModelSpec spec, int unit)
    {
        bool outer = unit == spec.NumLayers;
        ParameterLayout layout = outer ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec);
        return layout.Slices.Select(s => (outer ? s.Name : $"layers.{unit}.{s.Name}", s));
    }

    private static float[] Slice(float[] unit, ParameterSlice s) => unit.AsSpan((int)s.Offset, (int)s.Elements).ToArray();

    private static void Place(IReadOnlyDictionary<string, (long[] Shape, float[] Data)> tensors, string name, ParameterSlice slice, float[] into, string folder)
    {
        if (!tensors.TryGetValue(name, out var t) || t.Data.Length != slice.Elements)
            throw new InvalidDataException($"Checkpoint '{folder}' lacks tensor {name} of {slice.Elements} elements.");
        t.Data.CopyTo(into, slice.Offset);
    }

    internal static string Hash(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
