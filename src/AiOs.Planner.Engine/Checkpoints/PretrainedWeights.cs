using System.Globalization;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>
/// Pretrained weights that replace the seeded initialisation (<c>aios train --init-from</c>): a <c>.safetensors</c>
/// file, or a Hugging Face model folder with <c>model.safetensors</c> or <c>model.safetensors.index.json</c> and its
/// shards, in GPT-2 or Llama naming (or an aios checkpoint's). Opening reads only the headers and checks everything
/// the model needs — family, layer count, vocabulary, each tensor's presence, shape and element type — so a mismatch
/// is reported before any long work; <see cref="ReadUnit"/> then reads one unit at a time from the memory-mapped files.
/// </summary>
public sealed class PretrainedWeights : IDisposable
{
    /// <summary>The single-file weights of a Hugging Face model folder.</summary>
    public const string SingleFile = "model.safetensors";
    /// <summary>The index of a sharded Hugging Face model folder (tensor name → shard file).</summary>
    public const string IndexFile = "model.safetensors.index.json";

    private const int ProblemsShown = 6;
    private const int UnusedShown = 5;

    private readonly ModelSpec _spec;
    private readonly List<SafeTensorsFile> _files;
    private readonly Dictionary<string, (SafeTensorsFile File, SafeTensorEntry Entry)> _tensors;
    private readonly TensorSource[][] _sources;

    private PretrainedWeights(string path, ModelSpec spec, WeightFamily family, List<SafeTensorsFile> files,
        Dictionary<string, (SafeTensorsFile, SafeTensorEntry)> tensors, TensorSource[][] sources, IReadOnlyList<string> warnings)
    {
        Path = path;
        _spec = spec;
        Family = family;
        _files = files;
        _tensors = tensors;
        _sources = sources;
        Warnings = warnings;
    }

    /// <summary>The file or folder the weights were opened from.</summary>
    public string Path { get; }

    /// <summary>Which naming the file follows.</summary>
    public WeightFamily Family { get; }

    /// <summary>The safetensors files read (one, or every shard).</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToArray();

    /// <summary>Things worth knowing that do not stop a run: tensors left unused, a <c>config.json</c> beside the weights whose compute constants differ from the description's.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Opens the weights at <paramref name="path"/> for <paramref name="spec"/> and checks that they fit it.</summary>
    /// <exception cref="FileNotFoundException">The path, or a shard the index names, does not exist.</exception>
    /// <exception cref="InvalidDataException">The files are not safetensors, or do not fit the model (the message names each problem and the fix).</exception>
    public static PretrainedWeights Open(string path, ModelSpec spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(spec);
        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (string file in ResolveFiles(path)) files.Add(SafeTensorsFile.Open(file));
            var tensors = new Dictionary<string, (SafeTensorsFile, SafeTensorEntry)>(StringComparer.Ordinal);
            foreach (SafeTensorsFile f in files)
                foreach (SafeTensorEntry e in f.Tensors.Values)
                    if (!tensors.TryAdd(e.Name, (f, e)))
                        throw new InvalidDataException($"{path}: tensor {e.Name} is in both {tensors[e.Name].Item1.Path} and {f.Path}.");
            var (family, sources, used) = Check(path, spec, tensors);
            var warnings = new List<string>();
            string[] unused = tensors.Keys.Where(n => !used.Contains(n) && !PretrainedNames.Ignorable(n, family, spec)).Order(StringComparer.Ordinal).ToArray();
            if (unused.Length > 0)
                warnings.Add($"{unused.Length} tensor(s) in {path} are not used by {Label(spec)}: {string.Join(", ", unused.Take(UnusedShown))}{(unused.Length > UnusedShown ? ", …" : "")}.");
            warnings.AddRange(ConfigWarnings(path, spec));
            return new PretrainedWeights(path, spec, family, files, tensors, sources, warnings);
        }
        catch
        {
            foreach (SafeTensorsFile f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>The fp32 values of unit <paramref name="unit"/> (a layer index, or L for the outer block), in its <see cref="ParameterLayout"/>.</summary>
    public float[] ReadUnit(int unit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(unit);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(unit, _spec.NumLayers);
        ParameterLayout layout = unit == _spec.NumLayers ? ParameterLayout.ForOuter(_spec) : ParameterLayout.ForLayer(_spec);
        var flat = new float[layout.Elements];
        // A fused GPT-2 c_attn feeds three of our slices; read it once per unit.
        var whole = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int i = 0; i < layout.Slices.Count; i++)
        {
            ParameterSlice slice = layout.Slices[i];
            TensorSource source = _sources[unit][i];
            var (file, entry) = _tensors[source.Name];
            Span<float> into = flat.AsSpan(checked((int)slice.Offset), checked((int)slice.Elements));
            switch (source.Layout)
            {
                case SourceLayout.Copy: file.ReadFloats(entry, 0, into); break;
                case SourceLayout.Range: file.ReadFloats(entry, source.Start, into); break;
                default:
                    if (!whole.TryGetValue(source.Name, out float[]? matrix))
                    {
                        matrix = new float[entry.Elements];
                        file.ReadFloats(entry, 0, matrix);
                        whole[source.Name] = matrix;
                    }
                    TakeColumnsTransposed(matrix, checked((int)entry.Shape[0]), checked((int)entry.Shape[1]), checked((int)source.Start), into);
                    break;
            }
        }
        return flat;
    }

    /// <summary>
    /// ours[o, i] = source[i, start + o] for o in [0, ours.Length / rows): a Conv1D weight [rows = in, columns = total out]
    /// becomes the Linear weight [out, in] of the output columns from <paramref name="start"/>.
    /// </summary>
    internal static void TakeColumnsTransposed(ReadOnlySpan<float> source, int rows, int columns, int start, Span<float> ours)
    {
        int outputs = ours.Length / rows;
        if (outputs * rows != ours.Length || start + outputs > columns || source.Length != (long)rows * columns)
            throw new ArgumentException($"Cannot take {ours.Length} elements as columns [{start}, …) of a [{rows}, {columns}] matrix.", nameof(ours));
        for (int o = 0; o < outputs; o++)
        {
            Span<float> row = ours.Slice(o * rows, rows);
            for (int i = 0; i < rows; i++) row[i] = source[i * columns + start + o];
        }
    }

    /// <summary>Unmaps every file.</summary>
    public void Dispose()
    {
        foreach (SafeTensorsFile f in _files) f.Dispose();
    }

    /// <summary>How messages name the model: its bundled description file, or its name.</summary>
    private static string Label(ModelSpec spec) =>
        ModelCatalog.Default.Names().Contains(spec.Name) ? $"models/{spec.Name}.json" : $"model '{spec.Name}'";

    /// <summary>Family, every slice's source (per unit, in layout order) and the file tensors they use; throws naming every problem.</summary>
    private static (WeightFamily, TensorSource[][], HashSet<string>) Check(string path, ModelSpec spec,
        IReadOnlyDictionary<string, (SafeTensorsFile File, SafeTensorEntry Entry)> tensors)
    {
        string label = Label(spec);
        const string pick = "pick the --model that matches the weights (for a Hugging Face folder, --model <folder>/config.json reads its shape)";
        if (PretrainedNames.Detect(tensors.Keys.ToHashSet(StringComparer.Ordinal)) is not var (family, prefix))
        {
            throw new InvalidDataException($"{path}: its tensor names are neither GPT-2's (wte.weight, h.0.attn.c_attn.weight …) nor Llama's " +
                $"(model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight …); it has {string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal).Take(UnusedShown))}{(tensors.Count > UnusedShown ? ", …" : "")}.");
        }
        if (PretrainedNames.Incompatibility(spec, family) is { } why)
            throw new InvalidDataException($"{path} does not fit {label}: {why}; {pick}.");
        SortedSet<int> layers = PretrainedNames.LayerIndices(tensors.Keys, family, prefix);
        if (layers.Count != spec.NumLayers)
            throw new InvalidDataException($"{label} has {spec.NumLayers} layers but {path} has {layers.Count} ({PretrainedNames.Describe(family)} weights); {pick}.");

        TensorSource embedding = PretrainedNames.Source(spec, family, prefix, spec.NumLayers, ParameterLayout.ForOuter(spec).Find("tok.weight")!);
        if (tensors.TryGetValue(embedding.Name, out var tok) && tok.Entry.Shape.Length == 2 && tok.Entry.Shape[0] != spec.VocabSize)
            throw new InvalidDataException($"{path} does not fit {label}: the vocabulary differs, {embedding.Name} has {tok.Entry.Shape[0]} rows but {label} has vocab_size {spec.VocabSize}; {pick}.");

        var problems = new List<string>();
        bool conv1D = false;
        var used = new HashSet<string>(StringComparer.Ordinal);
        var sources = new TensorSource[spec.NumLayers + 1][];
        for (int u = 0; u <= spec.NumLayers; u++)
        {
            ParameterLayout layout = u == spec.NumLayers ? ParameterLayout.ForOuter(spec) : ParameterLayout.ForLayer(spec);
            sources[u] = new TensorSource[layout.Slices.Count];
            for (int i = 0; i < layout.Slices.Count; i++)
            {
                ParameterSlice slice = layout.Slices[i];
                TensorSource source = PretrainedNames.Source(spec, family, prefix, u, slice);
                sources[u][i] = source;
                // A fused tensor feeds several slices: report it once.
                if (!used.Add(source.Name)) continue;
                if (!tensors.TryGetValue(source.Name, out var found))
                {
                    string where = u == spec.NumLayers ? slice.Name : $"layer {u}'s {slice.Name}";
                    string hint = slice.Name == "head.weight" ? "; the weights may tie the head to the embedding: use a model description with tied_embeddings true" : "";
                    problems.Add($"tensor {source.Name} is missing ({label} needs it for {where}{hint})");
                }
                else if (!found.Entry.Shape.SequenceEqual(source.Shape))
                {
                    conv1D |= source.Layout == SourceLayout.Conv1DColumns;
                    problems.Add($"tensor {source.Name} has shape {found.Entry.ShapeText} but the model needs {SafeTensorEntry.ShapeOf(source.Shape)}");
                }
                else if (!found.Entry.Readable)
                    problems.Add(SafeTensorsFile.UnsupportedDType(found.Entry, found.File.Path));
            }
        }
        if (problems.Count > 0)
        {
            string more = problems.Count > ProblemsShown ? $"; and {problems.Count - ProblemsShown} more" : "";
            string note = conv1D ? " (GPT-2 stores its Conv1D weights as [in, out]; the shapes above are as the file stores them)" : "";
            throw new InvalidDataException($"{path} does not fit {label} (hidden_size {spec.HiddenSize}, ffn_size {spec.FfnSize}, {spec.KvHeads} kv heads): " +
                $"{string.Join("; ", problems.Take(ProblemsShown))}{more}{note}. If the file is right, {pick}.");
        }
        return (family, sources, used);
    }

    /// <summary>The safetensors files at <paramref name="path"/>: the file itself, a folder's single file, or every shard its index names.</summary>
    private static List<string> ResolveFiles(string path)
    {
        if (File.Exists(path))
            return path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase) ? Shards(path) : [path];
        if (!Directory.Exists(path))
            throw new FileNotFoundException($"Pretrained weights '{path}' do not exist: give a .safetensors file or a Hugging Face model folder holding {SingleFile} or {IndexFile}.", path);
        string single = System.IO.Path.Combine(path, SingleFile), index = System.IO.Path.Combine(path, IndexFile);
        if (File.Exists(single)) return [single];
        if (File.Exists(index)) return Shards(index);
        string[] others = Directory.GetFiles(path, "*.safetensors").Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        string hint = others.Length > 0 ? $" It has {string.Join(", ", others.Take(UnusedShown))}: pass one of them as the file."
            : Directory.GetFiles(path, "*.bin").Length > 0 ? " Its *.bin files are PyTorch pickles, which are not read: convert them to safetensors (or download the model's safetensors files)."
            : "";
        throw new FileNotFoundException($"Folder '{path}' holds neither {SingleFile} nor {IndexFile}.{hint}", single);
    }

    /// <summary>The distinct shard files of a <c>model.safetensors.index.json</c>, each checked to exist.</summary>
    private static List<string> Shards(string indexPath)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var shards = new List<string>();
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{indexPath}: no weight_map object (a Hugging Face index maps each tensor name to its shard file).");
            foreach (JsonProperty p in map.EnumerateObject())
            {
                string shard = System.IO.Path.Combine(folder, p.Value.GetString() ?? "");
                if (!shards.Contains(shard)) shards.Add(shard);
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{indexPath} is not valid JSON ({e.Message}).", e);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"{indexPath}: weight_map values must be shard file names.", e);
        }
        foreach (string shard in shards)
            if (!File.Exists(shard)) throw new FileNotFoundException($"Shard {System.IO.Path.GetFileName(shard)} named in {indexPath} is missing: download every shard.", shard);
        return shards;
    }

    /// <summary>
    /// Warnings where the <c>config.json</c> beside the weights (if any) sets a constant that changes what the model
    /// computes — GELU variant, norm ε, rotary base and scaling — to another value than the description: the run
    /// starts from the weights, but its function differs from the one they were trained for.
    /// </summary>
    private static List<string> ConfigWarnings(string path, ModelSpec spec)
    {
        string folder = Directory.Exists(path) ? path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        string config = System.IO.Path.Combine(folder, "config.json");
        if (!File.Exists(config)) return [];
        ComputeConstants constants;
        string? modelType;
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(config));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return [$"{config} is not a JSON object; its constants were not compared with the description."];
            modelType = doc.RootElement.TryGetProperty("model_type", out JsonElement t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            constants = HuggingFaceConfig.Constants(doc.RootElement, config);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return [$"{config} could not be read ({e.Message}); its constants were not compared with the description."];
        }
        catch (DescriptionException e)
        {
            return [$"{e.Message} The engine cannot compute the model as {config} describes it; the run starts from the weights but computes something else."];
        }
        var warnings = ConstantMismatches(config, spec, constants).ToList();
        // Gemma, Phi-3 and others name their tensors as Llama does but compute differently (docs/engine.md).
        if (modelType is { Length: > 0 } type && !HuggingFaceConfig.SupportedTypes.Contains(type))
            warnings.Insert(0, $"{config} says model_type {type}: its tensors load under Llama's or GPT-2's names, but the engine computes only " +
                $"{string.Join(", ", HuggingFaceConfig.SupportedTypes)} exactly; the run starts from the weights but may compute something else.");
        return warnings;
    }

    /// <summary>One warning per constant of <paramref name="config"/> that differs from <paramref name="spec"/>, naming both values and the fix.</summary>
    internal static IEnumerable<string> ConstantMismatches(string config, ModelSpec spec, ComputeConstants constants)
    {
        string label = Label(spec);
        string edit = label.StartsWith("models/", StringComparison.Ordinal) ? $"edit {label}" : $"edit the description of {label}";
        string fix = $"to match, pass --model {config} (the description is then read from the Hugging Face config) or {edit}";
        string Warning(string hfField, string hfValue, string field, string value) =>
            $"{config} has {hfField} {hfValue} but {label} has {field} {value}: the model computes something other than what the weights were trained for; {fix}.";

        if (spec.FfnKind == FfnKind.GeluMlp && constants.Activation != spec.Activation)
            yield return Warning("activation_function", constants.Activation == ActivationKind.GeluTanh ? "gelu_new (tanh GELU)" : "gelu (exact)",
                "activation", Choice.NameOf(spec.Activation));
        if (!Close(constants.NormEps, spec.NormEps))
            yield return Warning(spec.Norm == NormKind.Rmsnorm ? "rms_norm_eps" : "layer_norm_epsilon", Text(constants.NormEps), "norm_eps", Text(spec.NormEps));
        if (spec.Positions != PositionKind.Rotary) yield break;
        if (!Close(constants.RopeTheta, spec.RopeTheta))
            yield return Warning("rope_theta", Text(constants.RopeTheta), "rope_theta", Text(spec.RopeTheta));
        if (constants.RopeScaling != spec.RopeScaling)
            yield return Warning("rope_scaling", Describe(constants.RopeScaling), "rope_scaling", Describe(spec.RopeScaling));
    }

    private static bool Close(double a, double b) => Math.Abs(a - b) <= 1e-9 * Math.Max(Math.Abs(a), Math.Abs(b));

    private static string Text(double value) => value.ToString("0.############", CultureInfo.InvariantCulture);

    private static string Describe(RopeScaling? s) => s is null ? "none" :
        $"{Choice.NameOf(s.RopeType)} (factor {Text(s.Factor)}, low_freq_factor {Text(s.LowFreqFactor)}, " +
        $"high_freq_factor {Text(s.HighFreqFactor)}, original_max_position_embeddings {s.OriginalMaxPositionEmbeddings})";
}
