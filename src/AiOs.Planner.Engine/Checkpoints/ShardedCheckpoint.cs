using System.Globalization;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>
/// Checkpoints of ZeRO-3 data parallel, where each rank holds only its shard of every unit (<see cref="ShardLayout"/>).
/// The folder <c>step-&lt;N&gt;/</c> holds, for each rank r of W, <c>model-rank&lt;r&gt;-of-&lt;W&gt;.safetensors</c> (tensor
/// <c>unit.&lt;u&gt;</c>: the rank's padded shard of unit u's fp32 master weights, <see cref="ShardLayout.ShardElements"/>
/// long, padding included) and <c>optimizer-rank&lt;r&gt;-of-&lt;W&gt;.safetensors</c> (the moments of the same shard, named as
/// <see cref="OptimizerStateTensors"/> names those of a tensor <c>unit.&lt;u&gt;</c>), and one <c>checkpoint.json</c> with
/// <c>world_size</c> and the checksum of every rank's files. Every rank writes its own files into
/// <c>step-&lt;N&gt;.partial/</c>; rank 0 writes the manifest only after every rank has finished, then renames the folder,
/// so a crash of any rank never leaves a checkpoint under the final name.
/// </summary>
/// <remarks>
/// Ranks must share the file system under the checkpoint root (one host, or a shared mount). With 8-bit optimizer state
/// each shard's moments are quantised block-wise from the shard's first element, so blocks never straddle ranks: resuming
/// on the same world size gives each rank the floats dequantised from its own blocks. Requantising a dequantised block
/// gives the same codes and scale back (<see cref="BlockwiseQuantization"/>), so a rank that keeps its moments 8-bit in
/// memory, blocked from its shard's start (the engine's ranks do: <c>EightBitMoments.For</c>; with sub-groups a whole
/// number of blocks), resumes with exactly the state it saved (tested). On another world size the
/// dequantised floats are re-sharded; a rank that then quantises them blocks them anew from its new shard's start.
/// </remarks>
public static class ShardedCheckpoint
{
    /// <summary>Name of rank <paramref name="rank"/>'s weights file in a checkpoint of <paramref name="worldSize"/> ranks.</summary>
    public static string ModelFileOf(int rank, int worldSize) => $"model-rank{rank:D5}-of-{worldSize:D5}.safetensors";

    /// <summary>Name of rank <paramref name="rank"/>'s optimizer-state file in a checkpoint of <paramref name="worldSize"/> ranks.</summary>
    public static string OptimizerFileOf(int rank, int worldSize) => $"optimizer-rank{rank:D5}-of-{worldSize:D5}.safetensors";

    /// <summary>The tensor name of unit <paramref name="unit"/>'s shard in a rank's files.</summary>
    public static string TensorOf(int unit) => $"unit.{unit}";

    /// <summary>
    /// The optimizer-state files of the checkpoint <paramref name="manifest"/> describes: <c>optimizer.safetensors</c>, or every
    /// rank's file of a sharded one. Each holds moments named as <see cref="OptimizerStateTensors"/> names them, so a tool that
    /// rewrites moments tensor by tensor (<see cref="CheckpointConversion"/>) can rewrite each file alike.
    /// </summary>
    public static IReadOnlyList<string> OptimizerFilesOf(CheckpointManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return manifest.WorldSize is { } w ? [.. Enumerable.Range(0, w).Select(r => OptimizerFileOf(r, w))] : [Checkpoint.OptimizerFile];
    }

    /// <summary>Every data file (weights and optimizer state) the checkpoint <paramref name="manifest"/> describes must hold.</summary>
    public static IReadOnlyList<string> DataFilesOf(CheckpointManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return manifest.WorldSize is { } w
            ? [.. Enumerable.Range(0, w).SelectMany(r => new[] { ModelFileOf(r, w), OptimizerFileOf(r, w) })]
            : [Checkpoint.ModelFile, Checkpoint.OptimizerFile];
    }

    /// <summary>Each rank's checksums, handed to rank 0 in the partial folder and removed before the rename.</summary>
    private static string HashFileOf(int rank) => $"rank{rank:D5}.sha256";

    /// <summary>
    /// Writes this rank's shards of the checkpoint of <paramref name="step"/> under <paramref name="root"/>; every rank calls it with
    /// the same arguments but its own <paramref name="shardOf"/> (unit → this rank's padded shard, <see cref="ShardLayout.ShardElements"/>
    /// long for the unit and world size). Returns the final folder once every rank has returned from writing and rank 0 has renamed it.
    /// </summary>
    /// <exception cref="ArgumentException">A shard's length is not the layout's (the message names the unit and both lengths).</exception>
    /// <exception cref="CollectiveException">Another rank failed before the checkpoint was complete; nothing is under the final name.</exception>
    public static string Save(string root, ModelSpec spec, int step, long seed, ICollectives collectives, Func<int, UnitState> shardOf,
        Execution.LossScaleState? lossScale = null, OptimizerStateFormat optimizerState = OptimizerStateFormat.Fp32)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentNullException.ThrowIfNull(shardOf);
        int rank = collectives.Rank, world = collectives.WorldSize;
        string final = Path.Combine(root, $"step-{step}"), partial = final + ".partial";
        if (rank == 0)
        {
            // A partial folder left by an earlier crash may hold another world size's files: start from an empty one.
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            Directory.CreateDirectory(partial);
        }
        collectives.Barrier(); // no rank writes before the folder is fresh

        string modelFile = ModelFileOf(rank, world), optimizerFile = OptimizerFileOf(rank, world);
        WriteShards(Path.Combine(partial, modelFile), Path.Combine(partial, optimizerFile), spec, step, rank, world, shardOf, optimizerState);
        string hashes = $"{Checkpoint.Hash(Path.Combine(partial, modelFile))}  {modelFile}\n{Checkpoint.Hash(Path.Combine(partial, optimizerFile))}  {optimizerFile}\n";
        WriteDurably(Path.Combine(partial, HashFileOf(rank)), hashes);
        collectives.Barrier(); // every rank's files and checksums are on the drive

        if (rank == 0)
        {
            var sha = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int r = 0; r < world; r++)
            {
                string hashFile = Path.Combine(partial, HashFileOf(r));
                foreach (var (file, hash) in ReadHashes(hashFile)) sha[file] = hash;
                if (!sha.ContainsKey(ModelFileOf(r, world)) || !sha.ContainsKey(OptimizerFileOf(r, world)))
                    throw new InvalidDataException($"{hashFile} lacks the checksum of rank {r}'s files; the checkpoint of step {step} is left unfinished in {partial}.");
            }
            var manifest = new CheckpointManifest(step, seed, spec.Name, sha)
            {
                LossScale = lossScale,
                OptimizerState = optimizerState == OptimizerStateFormat.Fp32 ? null : optimizerState.Name(),
                WorldSize = world,
                LayerOrder = ParameterLayout.CurrentLayerOrder,
            };
            WriteDurably(Path.Combine(partial, Checkpoint.ManifestFile), JsonSerializer.Serialize(manifest, DescriptionJson.Options));
            for (int r = 0; r < world; r++) File.Delete(Path.Combine(partial, HashFileOf(r)));
            // As Checkpoint.Save: set an older checkpoint of the same step aside, move the new one in, then drop the old one.
            string old = final + ".old";
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            if (Directory.Exists(final)) Directory.Move(final, old);
            Directory.Move(partial, final);
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        }
        collectives.Barrier(); // no rank returns (and goes on to delete or read it) before the rename
        return final;
    }

    /// <summary>
    /// This rank's padded shards of every unit (<see cref="ShardLayout"/> of the unit's elements and <paramref name="worldSize"/>)
    /// read from <paramref name="folder"/>: a sharded checkpoint of any world size (re-sharded when it differs; the padding of the
    /// shards is then zero) or a single-process one (<see cref="Checkpoint.Save"/>). Only the saved ranges this rank needs are read,
    /// one unit at a time; every file read is checked against the manifest's checksum first.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder is incomplete (a rank's file is missing), corrupted, or for another model.</exception>
    public static (CheckpointManifest Manifest, UnitState[] Shards) LoadShard(string folder, ModelSpec spec, int rank, int worldSize)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentNullException.ThrowIfNull(spec);
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "The world size must be at least 1.");
        if ((uint)rank >= (uint)worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank {rank} is outside a world of {worldSize} ranks.");
        string manifestPath = Path.Combine(folder, Checkpoint.ManifestFile);
        if (!File.Exists(manifestPath)) throw new InvalidDataException($"'{folder}' is not a checkpoint: {Checkpoint.ManifestFile} is missing.");
        CheckpointManifest manifest = DescriptionJson.Parse<CheckpointManifest>(File.ReadAllText(manifestPath), manifestPath);
        if (manifest.Model != spec.Name)
            throw new InvalidDataException($"Checkpoint '{folder}' is for model {manifest.Model}, not {spec.Name}.");
        return (manifest, Read(folder, manifest, spec, rank, worldSize));
    }

    /// <summary>The shards of <paramref name="rank"/> of <paramref name="worldSize"/> from a checkpoint whose manifest has been read and matched to the model.</summary>
    internal static UnitState[] Read(string folder, CheckpointManifest manifest, ModelSpec spec, int rank, int worldSize)
    {
        OptimizerStateFormat format = Checkpoint.FormatOf(manifest, Path.Combine(folder, Checkpoint.ManifestFile));
        IShardSource files = manifest.WorldSize is { } saved
            ? new ShardFilesSource(folder, manifest, spec, saved, format)
            : new SingleFilesSource(folder, manifest, spec, format);
        // Shard files written before 2026-12-06 hold each layer's slices in the order before (LegacyLayerOrder reorders them by name).
        using IShardSource source = manifest.WorldSize is { } world && manifest.LayerOrder is null && LegacyLayerOrder.Differs(spec)
            ? new LegacyLayerOrder(files, spec, world) : files;
        var shards = new UnitState[spec.NumLayers + 1];
        for (int u = 0; u < shards.Length; u++)
        {
            var layout = new ShardLayout(ElementsOf(spec, u), worldSize);
            long length = layout.ShardElements;
            var state = new UnitState(new float[length], new float[length], new float[length]);
            if (manifest.WorldSize == worldSize) source.ReadSavedShard(u, rank, state); // the very floats saved, padding included
            else
            {
                (long start, long real) = layout.RangeOf(rank);
                if (real > 0) source.Read(u, start, state, (int)real);
            }
            shards[u] = state;
        }
        return shards;
    }

    /// <summary>Elements of unit <paramref name="unit"/> (layers 0 … L − 1, then the outer block).</summary>
    internal static long ElementsOf(ModelSpec spec, int unit) =>
        (unit == spec.NumLayers ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec)).Elements;

    private static void WriteShards(string modelPath, string optimizerPath, ModelSpec spec, int step, int rank, int world, Func<int, UnitState> shardOf,
        OptimizerStateFormat optimizerState)
    {
        var weights = new List<(string, long[], float[])>();
        var moments = new List<RawTensor>();
        for (int u = 0; u <= spec.NumLayers; u++)
        {
            long length = new ShardLayout(ElementsOf(spec, u), world).ShardElements;
            UnitState state = shardOf(u) ?? throw new ArgumentException($"Rank {rank}'s shard of unit {u} is null.", nameof(shardOf));
            foreach (var (what, values) in new[] { ("master weights", state.Master), ("exp_avg", state.ExpAvg), ("exp_avg_sq", state.ExpAvgSq) })
                if (values.Length != length)
                    throw new ArgumentException($"Rank {rank}'s shard of unit {u} ({what}) holds {values.Length} elements; ShardLayout({ElementsOf(spec, u)}, {world}) needs {length}.", nameof(shardOf));
            string name = TensorOf(u);
            weights.Add((name, [length], state.Master));
            moments.AddRange(OptimizerStateTensors.Encode(name, [length], state.ExpAvg, state.ExpAvgSq, optimizerState));
        }
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["model"] = spec.Name,
            ["rank"] = rank.ToString(CultureInfo.InvariantCulture),
            ["world_size"] = world.ToString(CultureInfo.InvariantCulture),
        };
        SafeTensors.Write(modelPath, weights, meta);
        SafeTensors.WriteRaw(optimizerPath, moments, optimizerState == OptimizerStateFormat.Fp32 ? meta : meta.Concat(OptimizerStateTensors.EightBitMetadata).ToDictionary());
    }

    private static IEnumerable<(string File, string Hash)> ReadHashes(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path} is missing: its rank passed the barrier without leaving its checksums.");
        foreach (string line in File.ReadAllLines(path).Where(l => l.Length > 0))
        {
            int gap = line.IndexOf("  ", StringComparison.Ordinal);
            if (gap != 64) throw new InvalidDataException($"{path}: '{line}' is not '<sha256>  <file>'.");
            yield return (line[(gap + 2)..], line[..gap]);
        }
    }

    /// <summary>Writes a new file and flushes it to the drive, so the rename that publishes the folder never precedes its contents.</summary>
    private static void WriteDurably(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
        stream.Flush(flushToDisk: true);
    }
}
