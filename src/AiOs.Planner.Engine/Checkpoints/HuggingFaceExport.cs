using System.Security.Cryptography;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>What <see cref="HuggingFaceExport.Export"/> wrote.</summary>
/// <param name="Folder">The Hugging Face folder (<c>model.safetensors</c> and <c>config.json</c>).</param>
/// <param name="Checkpoint">The checkpoint folder read.</param>
/// <param name="Step">The checkpoint's step.</param>
/// <param name="Family">The naming written.</param>
/// <param name="Tensors">Tensors in <c>model.safetensors</c>.</param>
/// <param name="Warnings">Things worth knowing that did not stop the export.</param>
public sealed record HfExportResult(string Folder, string Checkpoint, int Step, WeightFamily Family, int Tensors, IReadOnlyList<string> Warnings);

/// <summary>
/// Writes an aios checkpoint as a Hugging Face model folder that <c>transformers</c>' <c>from_pretrained</c> loads:
/// <c>model.safetensors</c> (fp32) in GPT-2 or Llama naming and a <c>config.json</c> built from the description. The
/// tensor mapping is <see cref="PretrainedNames.Source"/> run backwards, so export and <c>--init-from</c> are exact
/// inverses: GPT-2's q, k and v are fused into <c>c_attn</c> and every Conv1D weight is stored [in, out].
/// </summary>
public static class HuggingFaceExport
{
    /// <summary>
    /// Exports the checkpoint at <paramref name="checkpointOrRun"/> (a <c>step-N</c> folder, or a run folder whose
    /// newest checkpoint is taken) of a model <paramref name="spec"/> into <paramref name="outFolder"/>, which must not
    /// exist or be empty. Everything is written into a hidden sibling folder that is renamed into place when complete.
    /// </summary>
    /// <exception cref="InvalidDataException">No checkpoint there, a corrupted one, or one that does not fit <paramref name="spec"/>.</exception>
    /// <exception cref="NotSupportedException">The model is neither GPT-2- nor Llama-shaped.</exception>
    /// <exception cref="ArgumentException"><paramref name="outFolder"/> is a file or a folder that is not empty.</exception>
    public static HfExportResult Export(string checkpointOrRun, ModelSpec spec, string outFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(checkpointOrRun);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentException.ThrowIfNullOrWhiteSpace(outFolder);
        var (chosen, why) = PretrainedNames.FamilyFor(spec);
        WeightFamily family = chosen ?? throw new NotSupportedException($"Cannot export {spec.Name} in Hugging Face naming: {why}.");
        string final = Path.GetFullPath(outFolder);
        CheckTarget(final);

        string checkpoint = ResolveCheckpoint(checkpointOrRun);
        CheckpointManifest manifest = VerifiedManifest(checkpoint);
        var warnings = new List<string>();
        if (manifest.Model != spec.Name)
            warnings.Add($"The checkpoint was written for model '{manifest.Model}'; it is exported as '{spec.Name}', whose shapes it fits.");

        List<(string Name, long[] Shape, float[] Data)> tensors;
        if (manifest.WorldSize is not null)
        {
            // A group's checkpoint: the ranks' shards (each file's checksum verified as it is read) assembled into whole units.
            UnitState[] units = ShardedCheckpoint.Read(checkpoint, manifest, spec, 0, 1);
            tensors = Tensors(spec, family, u => units[u].Master);
        }
        else
        {
            using PretrainedWeights weights = PretrainedWeights.Open(Path.Combine(checkpoint, Checkpoint.ModelFile), spec);
            if (weights.Family != WeightFamily.Aios)
                throw new InvalidDataException($"{checkpoint}/{Checkpoint.ModelFile} holds {PretrainedNames.Describe(weights.Family)} names, not an aios checkpoint's.");
            tensors = Tensors(spec, family, weights.ReadUnit);
        }

        string parent = Path.GetDirectoryName(final)!;
        Directory.CreateDirectory(parent);
        string partial = Path.Combine(parent, $".{Path.GetFileName(final)}.partial-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(partial);
            var meta = new Dictionary<string, string> { ["format"] = "pt", ["aios_step"] = manifest.Step.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            SafeTensors.Write(Path.Combine(partial, PretrainedWeights.SingleFile), tensors, meta);
            string config = HuggingFaceConfigWriter.For(spec, family).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
            AtomicFile.WriteAllText(Path.Combine(partial, "config.json"), config);
            // An empty folder at the target (checked above) is replaced; Directory.Move needs the name free.
            if (Directory.Exists(final)) Directory.Delete(final);
            Directory.Move(partial, final);
        }
        finally
        {
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        }
        return new HfExportResult(final, checkpoint, manifest.Step, family, tensors.Count, warnings);
    }

    /// <summary>
    /// Our units in the tensors of <paramref name="family"/> under its saved prefix (<see cref="PretrainedNames.SavedPrefix"/>):
    /// each file tensor is assembled from the slices <see cref="PretrainedNames.Source"/> maps into it, and every one of
    /// its elements must be covered exactly once. A tied head is not written (Hugging Face ties it to the embedding).
    /// </summary>
    public static List<(string Name, long[] Shape, float[] Data)> Tensors(ModelSpec spec, WeightFamily family, Func<int, float[]> unitOf)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(unitOf);
        string prefix = PretrainedNames.SavedPrefix(family);
        var result = new List<(string Name, long[] Shape, float[] Data)>();
        for (int u = 0; u <= spec.NumLayers; u++)
        {
            ParameterLayout layout = u == spec.NumLayers ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec);
            float[] values = unitOf(u);
            if (values.Length != layout.Elements)
                throw new ArgumentException($"Unit {u} has {values.Length} values but its layout {layout.Elements}.", nameof(unitOf));
            // A fused GPT-2 c_attn takes three slices of this unit; tensors never span units.
            var built = new Dictionary<string, (long[] Shape, float[] Data, long Filled)>(StringComparer.Ordinal);
            var order = new List<string>();
            foreach (ParameterSlice slice in layout.Slices)
            {
                TensorSource source = PretrainedNames.Source(spec, family, prefix, u, slice);
                if (!built.TryGetValue(source.Name, out var tensor))
                {
                    tensor = (source.Shape, new float[source.Shape.Aggregate(1L, (a, b) => a * b)], 0);
                    order.Add(source.Name);
                }
                ReadOnlySpan<float> ours = values.AsSpan(checked((int)slice.Offset), checked((int)slice.Elements));
                Place(source, ours, tensor.Data);
                built[source.Name] = (tensor.Shape, tensor.Data, tensor.Filled + ours.Length);
            }
            foreach (string name in order)
            {
                var (shape, data, filled) = built[name];
                // The mapping is a bijection; a gap or overlap would be a bug in it, not bad input.
                if (filled != data.Length)
                    throw new InvalidOperationException($"Tensor {name}: the slices mapped into it cover {filled} of its {data.Length} elements.");
                result.Add((name, shape, data));
            }
        }
        return result;
    }

    /// <summary>A checkpoint folder as given, or the newest checkpoint of a run folder.</summary>
    /// <exception cref="InvalidDataException">Neither.</exception>
    public static string ResolveCheckpoint(string path)
    {
        if (File.Exists(Path.Combine(path, Checkpoint.ManifestFile))) return path;
        if (!Directory.Exists(path))
            throw new InvalidDataException($"'{path}' does not exist: give a checkpoint folder (runs/<id>/checkpoints/step-N) or a run folder (runs/<id>) written with --save-every.");
        return Checkpoint.Latest(Path.Combine(path, "checkpoints"))
            ?? throw new InvalidDataException($"'{path}' is neither a checkpoint (no {Checkpoint.ManifestFile}) nor a run folder with checkpoints (no checkpoints/step-N/): train with --save-every N to write one.");
    }

    /// <summary>ours → the file tensor, the inverse of <see cref="PretrainedWeights.ReadUnit"/>'s placement.</summary>
    private static void Place(TensorSource source, ReadOnlySpan<float> ours, float[] into)
    {
        switch (source.Layout)
        {
            case SourceLayout.Copy: ours.CopyTo(into); break;
            case SourceLayout.Range: ours.CopyTo(into.AsSpan(checked((int)source.Start), ours.Length)); break;
            default: PutColumnsTransposed(ours, checked((int)source.Shape[0]), checked((int)source.Shape[1]), checked((int)source.Start), into); break;
        }
    }

    /// <summary>
    /// target[i, start + o] = ours[o, i]: a Linear weight [out, in] becomes output columns [start, start + out) of a
    /// Conv1D weight [rows = in, columns = total out]; the inverse of <see cref="PretrainedWeights.TakeColumnsTransposed"/>.
    /// </summary>
    internal static void PutColumnsTransposed(ReadOnlySpan<float> ours, int rows, int columns, int start, Span<float> target)
    {
        int outputs = ours.Length / rows;
        if (outputs * rows != ours.Length || start + outputs > columns || target.Length != (long)rows * columns)
            throw new ArgumentException($"Cannot place {ours.Length} elements as columns [{start}, …) of a [{rows}, {columns}] matrix.", nameof(ours));
        for (int o = 0; o < outputs; o++)
        {
            ReadOnlySpan<float> row = ours.Slice(o * rows, rows);
            for (int i = 0; i < rows; i++) target[i * columns + start + o] = row[i];
        }
    }

    /// <summary>Refuses a target that is a file or a folder with contents: an export never replaces anything.</summary>
    private static void CheckTarget(string final)
    {
        if (File.Exists(final))
            throw new ArgumentException($"--out {final} is a file; give a folder that does not exist yet.");
        if (Directory.Exists(final) && Directory.EnumerateFileSystemEntries(final).Any())
            throw new ArgumentException($"--out {final} already holds files; remove it or give another folder (an export never overwrites).");
    }

    /// <summary>The checkpoint's manifest, with the checksum of its weights verified (its optimizer file is not read).</summary>
    private static CheckpointManifest VerifiedManifest(string checkpoint)
    {
        string manifestPath = Path.Combine(checkpoint, Checkpoint.ManifestFile);
        CheckpointManifest manifest = DescriptionJson.Parse<CheckpointManifest>(File.ReadAllText(manifestPath), manifestPath);
        // A group's shards are verified as they are read.
        if (manifest.WorldSize is not null) return manifest;
        string weights = Path.Combine(checkpoint, Checkpoint.ModelFile);
        if (!File.Exists(weights)) throw new InvalidDataException($"Checkpoint '{checkpoint}' is incomplete: {Checkpoint.ModelFile} is missing.");
        using (FileStream stream = File.OpenRead(weights))
        {
            if (!manifest.Sha256.TryGetValue(Checkpoint.ModelFile, out string? expected) || Convert.ToHexStringLower(SHA256.HashData(stream)) != expected)
                throw new InvalidDataException($"Checkpoint '{checkpoint}' is corrupted: the checksum of {Checkpoint.ModelFile} does not match {Checkpoint.ManifestFile}.");
        }
        return manifest;
    }
}
