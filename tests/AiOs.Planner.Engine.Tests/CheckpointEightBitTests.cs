using System.Text.Json;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>8-bit optimizer state in checkpoints and <see cref="CheckpointConversion"/>: round trips, bounds, refusals, nothing half-written.</summary>
public sealed class CheckpointEightBitTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-ckpt8-").FullName;
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Random fp32 state for every unit of tiny-gpt (v ≥ 0, magnitudes spread over decades as real moments are).</summary>
    private static UnitState[] RandomState(int seed)
    {
        var rng = new Random(seed);
        float Next(double scale) => (float)((rng.NextDouble() - 0.5) * scale * Math.Pow(10, -3 * rng.NextDouble()));
        return Enumerable.Range(0, Spec.NumLayers + 1).Select(u =>
        {
            long n = (u == Spec.NumLayers ? ParameterLayout.ForOuter(Spec) : ParameterLayout.ForLayer(Spec)).Elements;
            return new UnitState(Enumerable.Range(0, (int)n).Select(_ => Next(2)).ToArray(), Enumerable.Range(0, (int)n).Select(_ => Next(1e-2)).ToArray(),
                Enumerable.Range(0, (int)n).Select(_ => Math.Abs(Next(1e-4))).ToArray());
        }).ToArray();
    }

    private string Save(UnitState[] state, OptimizerStateFormat format, string name = "run") =>
        Checkpoint.Save(Path.Combine(_root, name), Spec, 7, 42, u => state[u], optimizerState: format);

    /// <summary>Each moment within one quantisation of its exact value: half the top decade's gap (0.9/64/2) of the largest magnitude in its tensor's block.</summary>
    private static void AssertWithinQuantisation(UnitState[] exact, UnitState[] loaded, int unitCount)
    {
        for (int u = 0; u < unitCount; u++)
        {
            bool outer = u == Spec.NumLayers;
            foreach (ParameterSlice s in (outer ? ParameterLayout.ForOuter(Spec) : ParameterLayout.ForLayer(Spec)).Slices)
                foreach (var (e, l) in new[] { (exact[u].ExpAvg, loaded[u].ExpAvg), (exact[u].ExpAvgSq, loaded[u].ExpAvgSq) })
                    for (long start = 0; start < s.Elements; start += BlockwiseQuantization.BlockSize)
                    {
                        int len = (int)Math.Min(BlockwiseQuantization.BlockSize, s.Elements - start);
                        var block = e.AsSpan((int)(s.Offset + start), len);
                        float bound = 0.9f / 64 / 2 * 1.001f * block.ToArray().Max(Math.Abs);
                        for (int i = 0; i < len; i++)
                            Assert.True(Math.Abs(block[i] - l[s.Offset + start + i]) <= bound, $"unit {u} {s.Name} element {start + i}");
                    }
        }
    }

    [Fact]
    public void Given_state_saved_8bit_When_loaded_Then_master_is_exact_and_moments_within_one_quantisation()
    {
        UnitState[] state = RandomState(1);
        string folder = Save(state, OptimizerStateFormat.EightBit);
        var (manifest, units) = Checkpoint.Load(folder, Spec);
        Assert.Equal("8bit", manifest.OptimizerState);
        for (int u = 0; u < units.Length; u++) Assert.Equal(state[u].Master, units[u].Master);
        AssertWithinQuantisation(state, units, units.Length);
        using var file = SafeTensorsFile.Open(Path.Combine(folder, Checkpoint.OptimizerFile));
        Assert.Equal("U8", file.Tensors["exp_avg_q8.tok.weight"].DType);
        Assert.Equal("F32", file.Tensors["exp_avg_sq_scales.tok.weight"].DType);
        Assert.DoesNotContain(file.Tensors.Keys, k => k.StartsWith("exp_avg.", StringComparison.Ordinal));
        Assert.Equal("2048", file.Metadata["block_size"]);
    }

    [Fact]
    public void Given_an_8bit_checkpoint_that_coded_v_itself_When_loaded_Then_it_is_refused_naming_the_map()
    {
        string folder = Save(RandomState(4), OptimizerStateFormat.EightBit);
        string path = Path.Combine(folder, Checkpoint.OptimizerFile);
        List<RawTensor> tensors;
        Dictionary<string, string> metadata;
        using (var file = SafeTensorsFile.Open(path))
        {
            tensors = file.Tensors.Values.Select(t => new RawTensor(t.Name, t.DType, t.Shape, file.ReadBytes(t))).ToList();
            metadata = new Dictionary<string, string>(file.Metadata) { ["exp_avg_sq_map"] = "dynamic-unsigned-7exp" };
        }
        // The layout before 2026-12-05 05:20 UTC: v's codes stood for v, not √v; read as √v they would square every moment.
        File.Delete(path);
        SafeTensors.WriteRaw(path, tensors, metadata);

        // The checkpoint as a whole is refused (its checksums no longer match), and the file on its own by the map check.
        Assert.ThrowsAny<InvalidDataException>(() => Checkpoint.Load(folder, Spec));
        using var rewritten = SafeTensorsFile.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => OptimizerStateTensors.CheckEightBitMetadata(rewritten));
        Assert.Contains("exp_avg_sq_map", e.Message);
        Assert.Contains("sqrt-dynamic-unsigned-7exp", e.Message);
    }

    [Fact]
    public void Given_an_fp32_checkpoint_Then_its_manifest_names_no_format_as_before()
    {
        string folder = Save(RandomState(2), OptimizerStateFormat.Fp32);
        Assert.DoesNotContain("optimizer_state", File.ReadAllText(Path.Combine(folder, Checkpoint.ManifestFile)));
    }

    [Fact]
    public void Given_fp32_When_converted_to_8bit_and_back_Then_master_bytes_are_identical_moments_within_the_bound_and_8bit_again_is_byte_identical()
    {
        UnitState[] state = RandomState(3);
        string fp32 = Save(state, OptimizerStateFormat.Fp32);
        string q1 = Path.Combine(_root, "q1"), back = Path.Combine(_root, "back"), q2 = Path.Combine(_root, "q2");
        var toQ = CheckpointConversion.Convert(fp32, q1, OptimizerStateFormat.EightBit);
        CheckpointConversion.Convert(q1, back, OptimizerStateFormat.Fp32);
        CheckpointConversion.Convert(back, q2, OptimizerStateFormat.EightBit);

        Assert.Equal((OptimizerStateFormat.Fp32, OptimizerStateFormat.EightBit, 7), (toQ.From, toQ.To, toQ.Step));
        // A quarter of the fp32 moments, plus one scale per block (tiny-gpt has many short tensors, each its own block) and the header.
        Assert.InRange(toQ.OptimizerAfter / toQ.OptimizerBefore, 0.25, 0.27);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fp32, Checkpoint.ModelFile)), File.ReadAllBytes(Path.Combine(back, Checkpoint.ModelFile)));
        var (manifest, units) = Checkpoint.Load(back, Spec);
        Assert.Null(manifest.OptimizerState);
        AssertWithinQuantisation(state, units, units.Length);
        // Dequantised then requantised state is the same state: resuming from a converted checkpoint loses nothing more.
        Assert.Equal(File.ReadAllBytes(Path.Combine(q1, Checkpoint.OptimizerFile)), File.ReadAllBytes(Path.Combine(q2, Checkpoint.OptimizerFile)));
        // A conversion holds the same tensors as saving 8-bit directly (the files' tensor order differs).
        using var direct = SafeTensorsFile.Open(Path.Combine(Save(state, OptimizerStateFormat.EightBit, "direct"), Checkpoint.OptimizerFile));
        using var converted = SafeTensorsFile.Open(Path.Combine(q1, Checkpoint.OptimizerFile));
        Assert.Equal(direct.Tensors.Keys.Order(), converted.Tensors.Keys.Order());
        foreach (var (name, entry) in direct.Tensors) Assert.Equal(direct.ReadBytes(entry), converted.ReadBytes(converted.Tensors[name]));
        Assert.Equal(direct.Metadata.OrderBy(kv => kv.Key), converted.Metadata.OrderBy(kv => kv.Key));
    }

    private static void AssertNothingLeft(string target)
    {
        Assert.False(Directory.Exists(target));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(target)!, "*.partial-*"));
    }

    [Fact]
    public void Given_a_target_that_exists_When_converted_Then_it_is_refused_and_untouched()
    {
        string fp32 = Save(RandomState(4), OptimizerStateFormat.Fp32);
        string target = Directory.CreateDirectory(Path.Combine(_root, "taken")).FullName;
        File.WriteAllText(Path.Combine(target, "keep.txt"), "mine");
        var e = Assert.Throws<ArgumentException>(() => CheckpointConversion.Convert(fp32, target, OptimizerStateFormat.EightBit));
        Assert.Contains("already exists", e.Message);
        Assert.Equal(["keep.txt"], Directory.GetFiles(target).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_a_source_with_a_flipped_byte_When_converted_Then_it_is_refused_naming_the_checksum_and_nothing_is_written()
    {
        string fp32 = Save(RandomState(5), OptimizerStateFormat.Fp32);
        string path = Path.Combine(fp32, Checkpoint.OptimizerFile);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[^10] ^= 1;
        File.WriteAllBytes(path, bytes);
        string target = Path.Combine(_root, "out");
        var e = Assert.Throws<InvalidDataException>(() => CheckpointConversion.Convert(fp32, target, OptimizerStateFormat.EightBit));
        Assert.Contains("checksum of optimizer.safetensors", e.Message);
        AssertNothingLeft(target);
    }

    [Fact]
    public void Given_a_stray_tensor_in_the_optimizer_file_When_converted_Then_it_fails_midway_and_leaves_nothing()
    {
        string fp32 = Save(RandomState(6), OptimizerStateFormat.Fp32);
        string path = Path.Combine(fp32, Checkpoint.OptimizerFile);
        var tensors = SafeTensors.Read(path).Select(kv => (kv.Key, kv.Value.Shape, kv.Value.Data)).Append(("lr_history", new long[] { 2 }, new float[] { 1, 2 })).ToList();
        File.Delete(path);
        SafeTensors.Write(path, tensors);
        string manifestPath = Path.Combine(fp32, Checkpoint.ManifestFile);
        var manifest = JsonSerializer.Deserialize<CheckpointManifest>(File.ReadAllText(manifestPath), Descriptions.DescriptionJson.Options)!;
        File.WriteAllText(manifestPath, JsonSerializer.Serialize(manifest with
        {
            Sha256 = new Dictionary<string, string>(manifest.Sha256) { [Checkpoint.OptimizerFile] = Checkpoint.Hash(path) },
        }, Descriptions.DescriptionJson.Options));
        string target = Path.Combine(_root, "out");
        var e = Assert.Throws<InvalidDataException>(() => CheckpointConversion.Convert(fp32, target, OptimizerStateFormat.EightBit));
        Assert.Contains("lr_history", e.Message);
        AssertNothingLeft(target);
    }

    [Fact]
    public void Given_a_checkpoint_already_in_the_format_When_converted_Then_the_message_says_which_flag_converts_it()
    {
        string q = Save(RandomState(7), OptimizerStateFormat.EightBit);
        var e = Assert.Throws<ArgumentException>(() => CheckpointConversion.Convert(q, Path.Combine(_root, "out"), OptimizerStateFormat.EightBit));
        Assert.Contains("already holds 8bit", e.Message);
        Assert.Contains("--optimizer-state fp32", e.Message);
    }

    [Fact]
    public void Given_a_manifest_naming_an_unknown_format_When_loaded_or_converted_Then_it_is_refused_naming_the_field()
    {
        string q = Save(RandomState(8), OptimizerStateFormat.EightBit);
        string manifestPath = Path.Combine(q, Checkpoint.ManifestFile);
        File.WriteAllText(manifestPath, File.ReadAllText(manifestPath).Replace("\"8bit\"", "\"4bit\""));
        Assert.Contains("optimizer_state is '4bit'", Assert.Throws<InvalidDataException>(() => Checkpoint.Load(q, Spec)).Message);
        Assert.Contains("optimizer_state is '4bit'", Assert.Throws<InvalidDataException>(() => CheckpointConversion.Convert(q, Path.Combine(_root, "o"), OptimizerStateFormat.Fp32)).Message);
    }

    [Fact]
    public void Given_a_folder_without_a_manifest_or_a_missing_parent_When_converted_Then_each_is_refused_naming_the_flag()
    {
        string empty = Directory.CreateDirectory(Path.Combine(_root, "empty")).FullName;
        Assert.Contains("checkpoint.json is missing", Assert.Throws<InvalidDataException>(() => CheckpointConversion.Convert(empty, Path.Combine(_root, "o"), OptimizerStateFormat.EightBit)).Message);
        string fp32 = Save(RandomState(9), OptimizerStateFormat.Fp32);
        Assert.Contains("parent folder", Assert.Throws<ArgumentException>(() => CheckpointConversion.Convert(fp32, Path.Combine(_root, "no", "such"), OptimizerStateFormat.EightBit)).Message);
        Assert.Contains("--from", Assert.Throws<ArgumentException>(() => CheckpointConversion.Convert(Path.Combine(_root, "nothing"), Path.Combine(_root, "o"), OptimizerStateFormat.EightBit)).Message);
    }
}
