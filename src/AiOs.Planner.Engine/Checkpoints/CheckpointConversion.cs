using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Optim;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>What <see cref="CheckpointConversion.Convert"/> wrote.</summary>
/// <param name="Target">The new checkpoint folder.</param>
/// <param name="Step">The checkpoint's step (unchanged).</param>
/// <param name="Model">The checkpoint's model (unchanged).</param>
/// <param name="From">The source's optimizer-state format.</param>
/// <param name="To">The target's.</param>
/// <param name="Tensors">Parameter tensors whose moments were converted.</param>
/// <param name="OptimizerBefore">Size of the source's optimizer file.</param>
/// <param name="OptimizerAfter">Size of the target's.</param>
public sealed record CheckpointConversionResult(string Target, int Step, string Model, OptimizerStateFormat From, OptimizerStateFormat To, int Tensors,
    Bytes OptimizerBefore, Bytes OptimizerAfter);

/// <summary>
/// Rewrites a checkpoint folder with its Adam moments in another <see cref="OptimizerStateFormat"/>: the master
/// weights and every other file are copied byte for byte (checksums verified before and after), the moments are
/// quantised (fp32 → 8-bit) or dequantised (8-bit → fp32) tensor by tensor, and the manifest names the new format.
/// Works on the files alone, so it needs no model description. The target is assembled in a hidden sibling folder
/// and renamed into place only when complete; it must not exist beforehand, and a failure leaves nothing under its name.
/// </summary>
public static class CheckpointConversion
{
    /// <summary>Converts the checkpoint <paramref name="source"/> into the new folder <paramref name="target"/> with moments in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentException">The folders or format are unusable (the message names the flag and the fix).</exception>
    /// <exception cref="InvalidDataException">The source is not a complete, uncorrupted checkpoint.</exception>
    public static CheckpointConversionResult Convert(string source, string target, OptimizerStateFormat format)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ArgumentException.ThrowIfNullOrWhiteSpace(target);
        string from = Path.GetFullPath(source), to = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        if (!Directory.Exists(from)) throw new ArgumentException($"--from '{source}' is not a folder; name a checkpoint folder (runs/<id>/checkpoints/step-N).");
        if (Directory.Exists(to) || File.Exists(to)) throw new ArgumentException($"--to '{target}' already exists; name a new folder (convert-checkpoint never overwrites).");
        string parent = Path.GetDirectoryName(to) ?? throw new ArgumentException($"--to '{target}' has no parent folder.");
        if (!Directory.Exists(parent)) throw new ArgumentException($"--to '{target}': its parent folder {parent} does not exist; create it first.");

        string manifestPath = Path.Combine(from, Checkpoint.ManifestFile);
        if (!File.Exists(manifestPath)) throw new InvalidDataException($"--from '{source}' is not a checkpoint: {Checkpoint.ManifestFile} is missing.");
        CheckpointManifest manifest = DescriptionJson.Parse<CheckpointManifest>(File.ReadAllText(manifestPath), manifestPath);
        OptimizerStateFormat current = Checkpoint.FormatOf(manifest, manifestPath);
        if (current == format)
            throw new ArgumentException($"--from '{source}' already holds {format.Name()} optimizer state; nothing to convert (--optimizer-state {(format == OptimizerStateFormat.Fp32 ? "8bit" : "fp32")} converts it).");
        // One process's files, or every rank's of a group's checkpoint (each rank's optimizer file converted on its own).
        var files = manifest.Sha256.Keys.Union(ShardedCheckpoint.DataFilesOf(manifest)).ToArray();
        var optimizerFiles = ShardedCheckpoint.OptimizerFilesOf(manifest).ToHashSet(StringComparer.Ordinal);
        foreach (string file in files)
        {
            if (file != Path.GetFileName(file)) throw new InvalidDataException($"{manifestPath}: '{file}' is not a plain file name.");
            Checkpoint.Verify(from, manifest, file);
        }

        string partial = Path.Combine(parent, $".{Path.GetFileName(to)}.partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(partial);
        try
        {
            var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string file in files.Where(f => !optimizerFiles.Contains(f)))
            {
                File.Copy(Path.Combine(from, file), Path.Combine(partial, file));
                Checkpoint.Verify(partial, manifest, file);
                hashes[file] = manifest.Sha256[file];
            }
            int tensors = 0;
            foreach (string file in optimizerFiles)
            {
                tensors += ConvertOptimizer(Path.Combine(from, file), Path.Combine(partial, file), current, format);
                hashes[file] = Checkpoint.Hash(Path.Combine(partial, file));
            }
            var converted = manifest with { Sha256 = hashes, OptimizerState = format == OptimizerStateFormat.Fp32 ? null : format.Name() };
            using (var stream = new FileStream(Path.Combine(partial, Checkpoint.ManifestFile), FileMode.CreateNew, FileAccess.Write))
            {
                JsonSerializer.Serialize(stream, converted, DescriptionJson.Options);
                stream.Flush(flushToDisk: true);
            }
            Directory.Move(partial, to);
            return new CheckpointConversionResult(to, manifest.Step, manifest.Model, current, format, tensors,
                new Bytes(optimizerFiles.Sum(f => new FileInfo(Path.Combine(from, f)).Length)), new Bytes(optimizerFiles.Sum(f => new FileInfo(Path.Combine(to, f)).Length)));
        }
        catch
        {
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            throw;
        }
    }

    /// <summary>Rewrites the optimizer file tensor by tensor; every tensor of the source must be a moment of some parameter. Returns the parameters converted.</summary>
    private static int ConvertOptimizer(string sourcePath, string targetPath, OptimizerStateFormat from, OptimizerStateFormat to)
    {
        using SafeTensorsFile source = SafeTensorsFile.Open(sourcePath);
        if (from == OptimizerStateFormat.EightBit) OptimizerStateTensors.CheckEightBitMetadata(source);
        string prefix = from == OptimizerStateFormat.Fp32 ? "exp_avg." : "exp_avg_q8.";
        int perName = from == OptimizerStateFormat.Fp32 ? 2 : 4;
        var names = source.Tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..]).Order(StringComparer.Ordinal).ToArray();
        var output = new List<RawTensor>();
        foreach (string name in names)
        {
            long[] shape = source.Tensors[prefix + name].Shape;
            long elements = source.Tensors[prefix + name].Elements;
            var (m, v) = OptimizerStateTensors.Decode(source, name, elements, from)
                ?? throw new InvalidDataException($"{sourcePath}: the moments of {name} are incomplete (one of its {perName} tensors is missing).");
            output.AddRange(OptimizerStateTensors.Encode(name, shape, m, v, to));
        }
        if (source.Tensors.Count != names.Length * perName)
        {
            var known = new HashSet<string>(names.SelectMany(n => from == OptimizerStateFormat.Fp32
                ? new[] { "exp_avg." + n, "exp_avg_sq." + n }
                : new[] { "exp_avg_q8." + n, "exp_avg_scales." + n, "exp_avg_sq_q8." + n, "exp_avg_sq_scales." + n }));
            string stray = source.Tensors.Keys.First(k => !known.Contains(k));
            throw new InvalidDataException($"{sourcePath}: tensor {stray} is not a {from.Name()} Adam moment; refusing to drop it.");
        }
        var metadata = source.Metadata.Where(kv => !OptimizerStateTensors.EightBitMetadata.ContainsKey(kv.Key)).ToDictionary();
        if (to == OptimizerStateFormat.EightBit) foreach (var (k, v) in OptimizerStateTensors.EightBitMetadata) metadata[k] = v;
        SafeTensors.WriteRaw(targetPath, output, metadata);
        return names.Length;
    }
}
