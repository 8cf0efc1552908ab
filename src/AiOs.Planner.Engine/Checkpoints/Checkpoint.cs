using System.Security.Cryptography;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

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
}

/// <summary>fp32 master weights and both Adam moments of one unit.</summary>
public sealed record UnitState(float[] Master, float[] ExpAvg, float[] ExpAvgSq);

/// <summary>
/// Checkpoints as folders <c>step-&lt;N&gt;/</c> holding <c>model.safetensors</c> (fp32 master weights,
/// named <c>layers.&lt;i&gt;.attn.q.weight</c> …, <c>tok.weight</c> …), <c>optimizer.safetensors</c>
/// (<c>exp_avg.…</c>, <c>exp_avg_sq.…</c>) and <c>checkpoint.json</c> with checksums. A checkpoint is
/// written into <c>step-&lt;N&gt;.partial/</c> and renamed when complete, so a crash never leaves a
/// half checkpoint under the final name; loading verifies every checksum.
/// </summary>
public static class Checkpoint
{
    public const string ModelFile = "model.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string ManifestFile = "checkpoint.json";

    /// <summary>Writes the checkpoint of <paramref name="step"/> under <paramref name="root"/>; returns its folder.</summary>
    public static string Save(string root, ModelSpec spec, int step, long seed, Func<int, UnitState> stateOf, Execution.LossScaleState? lossScale = null)
    {
        string final = Path.Combine(root, $"step-{step}"), partial = final + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);
        var weights = new List<(string, long[], float[])>();
        var moments = new List<(string, long[], float[])>();
        for (int u = 0; u <= spec.NumLayers; u++)
        {
            UnitState state = stateOf(u);
            foreach (var (name, slice) in Names(spec, u))
            {
                weights.Add((name, slice.Shape, Slice(state.Master, slice)));
                moments.Add(("exp_avg." + name, slice.Shape, Slice(state.ExpAvg, slice)));
                moments.Add(("exp_avg_sq." + name, slice.Shape, Slice(state.ExpAvgSq, slice)));
            }
        }
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["step"] = step.ToString(), ["model"] = spec.Name };
        SafeTensors.Write(Path.Combine(partial, ModelFile), weights, meta);
        SafeTensors.Write(Path.Combine(partial, OptimizerFile), moments, meta);
        var manifest = new CheckpointManifest(step, seed, spec.Name, new Dictionary<string, string>
        {
            [ModelFile] = Hash(Path.Combine(partial, ModelFile)),
            [OptimizerFile] = Hash(Path.Combine(partial, OptimizerFile)),
        })
        { LossScale = lossScale };
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

    /// <summary>Reads and verifies a checkpoint folder for <paramref name="spec"/>: manifest, checksums, every tensor.</summary>
    /// <exception cref="InvalidDataException">The folder is incomplete, corrupted, or for another model.</exception>
    public static (CheckpointManifest Manifest, UnitState[] Units) Load(string folder, ModelSpec spec)
    {
        string manifestPath = Path.Combine(folder, ManifestFile);
        if (!File.Exists(manifestPath)) throw new InvalidDataException($"'{folder}' is not a checkpoint: {ManifestFile} is missing.");
        CheckpointManifest manifest = DescriptionJson.Parse<CheckpointManifest>(File.ReadAllText(manifestPath), manifestPath);
        if (manifest.Model != spec.Name)
            throw new InvalidDataException($"Checkpoint '{folder}' is for model {manifest.Model}, not {spec.Name}.");
        foreach (string file in new[] { ModelFile, OptimizerFile })
        {
            string path = Path.Combine(folder, file);
            if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{folder}' is incomplete: {file} is missing.");
            if (!manifest.Sha256.TryGetValue(file, out string? expected) || Hash(path) != expected)
                throw new InvalidDataException($"Checkpoint '{folder}' is corrupted: the checksum of {file} does not match {ManifestFile}.");
        }
        var weights = SafeTensors.Read(Path.Combine(folder, ModelFile));
        var moments = SafeTensors.Read(Path.Combine(folder, OptimizerFile));
        var units = new UnitState[spec.NumLayers + 1];
        for (int u = 0; u < units.Length; u++)
        {
            ParameterLayout layout = u == spec.NumLayers ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec);
            var state = new UnitState(new float[layout.Elements], new float[layout.Elements], new float[layout.Elements]);
            foreach (var (name, slice) in Names(spec, u))
            {
                Place(weights, name, slice, state.Master, folder);
                Place(moments, "exp_avg." + name, slice, state.ExpAvg, folder);
                Place(moments, "exp_avg_sq." + name, slice, state.ExpAvgSq, folder);
            }
            units[u] = state;
        }
        return (manifest, units);
    }

    /// <summary>The newest complete checkpoint folder under <paramref name="root"/>, or null.</summary>
    public static string? Latest(string root) =>
        !Directory.Exists(root) ? null : Directory.GetDirectories(root, "step-*")
            .Where(d => !d.EndsWith(".partial", StringComparison.Ordinal) && File.Exists(Path.Combine(d, ManifestFile)))
            .OrderByDescending(d => int.TryParse(Path.GetFileName(d)["step-".Length..], out int n) ? n : -1)
            .FirstOrDefault();

    private static IEnumerable<(string Name, ParameterSlice Slice)> Names(ModelSpec spec, int unit)
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

    private static string Hash(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
