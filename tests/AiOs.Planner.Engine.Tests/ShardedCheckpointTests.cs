using System.Text.Json;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// ZeRO-3 sharded checkpoints: ranks run as threads joined by <see cref="SharedMemoryCollectives"/>; what they save is compared with
/// <see cref="ShardLayout"/> slices of the full units, bit for bit, on the same and on other world sizes.
/// </summary>
public sealed class ShardedCheckpointTests : IDisposable
{
    private const int Step = 7;
    private readonly string _root = Directory.CreateTempSubdirectory("aios-shardckpt-").FullName;
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Random full units of tiny-gpt (v ≥ 0, magnitudes spread over decades as real moments are).</summary>
    private static UnitState[] RandomUnits(int seed)
    {
        var rng = new Random(seed);
        float Next(double scale) => (float)((rng.NextDouble() - 0.5) * scale * Math.Pow(10, -3 * rng.NextDouble()));
        return [.. Enumerable.Range(0, Spec.NumLayers + 1).Select(u =>
        {
            int n = (int)ShardedCheckpoint.ElementsOf(Spec, u);
            return new UnitState([.. Enumerable.Range(0, n).Select(_ => Next(2))], [.. Enumerable.Range(0, n).Select(_ => Next(1e-2))],
                [.. Enumerable.Range(0, n).Select(_ => Math.Abs(Next(1e-4)))]);
        })];
    }

    /// <summary>Rank <paramref name="rank"/>'s padded shards of <paramref name="units"/> in a world of <paramref name="world"/>.</summary>
    private static UnitState[] ShardsOf(UnitState[] units, int rank, int world) => [.. units.Select(unit =>
    {
        var layout = new ShardLayout(unit.Master.Length, world);
        float[] Cut(float[] full)
        {
            var shard = new float[layout.ShardElements];
            layout.Shard<float>(full, rank, shard);
            return shard;
        }
        return new UnitState(Cut(unit.Master), Cut(unit.ExpAvg), Cut(unit.ExpAvgSq));
    })];

    /// <summary>Every rank saves its shards of <paramref name="units"/>; returns the folder (the same on every rank).</summary>
    private string SaveSharded(UnitState[] units, int world, OptimizerStateFormat format = OptimizerStateFormat.Fp32, string run = "run")
    {
        string[] folders = CollectiveThreads.Run(world, c =>
        {
            UnitState[] mine = ShardsOf(units, c.Rank, world);
            return ShardedCheckpoint.Save(Path.Combine(_root, run), Spec, Step, 42, c, u => mine[u], optimizerState: format);
        });
        Assert.All(folders, f => Assert.Equal(folders[0], f));
        return folders[0];
    }

    private static void AssertBitEqual(UnitState expected, UnitState actual, string what)
    {
        foreach (var (e, a, part) in new[] { (expected.Master, actual.Master, "master"), (expected.ExpAvg, actual.ExpAvg, "exp_avg"), (expected.ExpAvgSq, actual.ExpAvgSq, "exp_avg_sq") })
        {
            Assert.True(e.Length == a.Length, $"{what} {part}: {a.Length} elements, expected {e.Length}");
            int differ = Enumerable.Range(0, e.Length).FirstOrDefault(i => BitConverter.SingleToInt32Bits(e[i]) != BitConverter.SingleToInt32Bits(a[i]), -1);
            Assert.True(differ < 0, $"{what} {part}: element {differ} is {(differ < 0 ? 0 : a[differ])}, expected {(differ < 0 ? 0 : e[differ])}");
        }
    }

    [Fact]
    public void Given_TwoRanksSaved_When_EachLoadsOnTwoRanks_Then_ItGetsItsOwnShardsBitForBit()
    {
        UnitState[] units = RandomUnits(1);
        string folder = SaveSharded(units, world: 2);

        for (int rank = 0; rank < 2; rank++)
        {
            var (manifest, shards) = ShardedCheckpoint.LoadShard(folder, Spec, rank, 2);
            Assert.Equal(2, manifest.WorldSize);
            Assert.Equal(Step, manifest.Step);
            UnitState[] expected = ShardsOf(units, rank, 2);
            for (int u = 0; u < shards.Length; u++) AssertBitEqual(expected[u], shards[u], $"rank {rank} unit {u}");
        }
        Assert.Equal("step-7", Path.GetFileName(folder));
        Assert.Equal(folder, Checkpoint.Latest(Path.Combine(_root, "run")));
        string[] files = [.. Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
        Assert.Equal(["checkpoint.json", "model-rank00000-of-00002.safetensors", "model-rank00001-of-00002.safetensors",
            "optimizer-rank00000-of-00002.safetensors", "optimizer-rank00001-of-00002.safetensors"], files);
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(3, 1)]
    [InlineData(3, 2)]
    [InlineData(2, 5)]
    public void Given_ACheckpointOfOneWorldSize_When_LoadedOnAnother_Then_EachShardIsTheSliceOfTheFullUnit(int saved, int loaded)
    {
        UnitState[] units = RandomUnits(2);
        string folder = SaveSharded(units, saved);

        for (int rank = 0; rank < loaded; rank++)
        {
            var (_, shards) = ShardedCheckpoint.LoadShard(folder, Spec, rank, loaded);
            UnitState[] expected = ShardsOf(units, rank, loaded);
            for (int u = 0; u < shards.Length; u++) AssertBitEqual(expected[u], shards[u], $"rank {rank} of {loaded}, unit {u}");
        }
    }

    [Theory]
    [InlineData(OptimizerStateFormat.Fp32)]
    [InlineData(OptimizerStateFormat.EightBit)]
    public void Given_ASingleProcessCheckpoint_When_LoadedOnTwoRanks_Then_EachShardIsTheSliceOfWhatCheckpointLoadReads(OptimizerStateFormat format)
    {
        UnitState[] units = RandomUnits(3);
        string folder = Checkpoint.Save(Path.Combine(_root, "single"), Spec, Step, 42, u => units[u], optimizerState: format);
        UnitState[] full = Checkpoint.Load(folder, Spec).Units; // 8-bit: the dequantised moments, tensor by tensor

        for (int rank = 0; rank < 2; rank++)
        {
            var (manifest, shards) = ShardedCheckpoint.LoadShard(folder, Spec, rank, 2);
            Assert.Null(manifest.WorldSize);
            UnitState[] expected = ShardsOf(full, rank, 2);
            for (int u = 0; u < shards.Length; u++) AssertBitEqual(expected[u], shards[u], $"rank {rank} unit {u}");
        }
        if (format == OptimizerStateFormat.Fp32)
            for (int u = 0; u < units.Length; u++) AssertBitEqual(units[u], full[u], $"unit {u}");
    }

    [Fact]
    public void Given_AShardedCheckpoint_When_CheckpointLoadReadsIt_Then_ItGetsTheFullUnits()
    {
        UnitState[] units = RandomUnits(4);
        string folder = SaveSharded(units, world: 3);

        var (manifest, full) = Checkpoint.Load(folder, Spec);

        Assert.Equal(3, manifest.WorldSize);
        Assert.Equal(units.Length, full.Length);
        for (int u = 0; u < units.Length; u++) AssertBitEqual(units[u], full[u], $"unit {u}");
    }

    [Theory]
    [InlineData("optimizer-rank00001-of-00002.safetensors")]
    [InlineData("model-rank00000-of-00002.safetensors")]
    public void Given_AShardFileWithAFlippedByte_When_Loaded_Then_ItIsRefusedNamingTheFile(string file)
    {
        string folder = SaveSharded(RandomUnits(5), world: 2);
        string path = Path.Combine(folder, file);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        int owner = file.Contains("rank00001", StringComparison.Ordinal) ? 1 : 0;

        var e = Assert.Throws<InvalidDataException>(() => ShardedCheckpoint.LoadShard(folder, Spec, owner, 2));
        var whole = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(folder, Spec));

        Assert.Contains("corrupted", e.Message);
        Assert.Contains(file, e.Message);
        Assert.Contains(file, whole.Message);
    }

    [Fact]
    public void Given_ARankFileIsMissing_When_AnyRankLoads_Then_ItIsRefusedNamingTheFileAndItsRank()
    {
        string folder = SaveSharded(RandomUnits(6), world: 2);
        File.Delete(Path.Combine(folder, "model-rank00001-of-00002.safetensors"));

        // Rank 0 of 2 reads only rank 0's files, yet refuses too: no rank resumes while another cannot.
        var e = Assert.Throws<InvalidDataException>(() => ShardedCheckpoint.LoadShard(folder, Spec, 0, 2));
        Assert.Throws<InvalidDataException>(() => ShardedCheckpoint.LoadShard(folder, Spec, 0, 3));

        Assert.Contains("incomplete", e.Message);
        Assert.Contains("model-rank00001-of-00002.safetensors", e.Message);
        Assert.Contains("rank 1", e.Message);
    }

    [Fact]
    public void Given_ARankThrowsWhileWriting_When_Saving_Then_OnlyThePartialFolderIsLeftAndNoRankReturnsAFolder()
    {
        UnitState[] units = RandomUnits(7);
        string root = Path.Combine(_root, "crash");
        Exception?[] outcomes = CollectiveThreads.Run(2, c =>
        {
            UnitState[] mine = ShardsOf(units, c.Rank, 2);
            try
            {
                ShardedCheckpoint.Save(root, Spec, Step, 42, c, u => c.Rank == 1 && u == 1 ? throw new IOException("disk full (simulated)") : mine[u]);
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        });

        Assert.IsType<CollectiveException>(outcomes[0]);
        Assert.IsType<IOException>(outcomes[1]);
        Assert.False(Directory.Exists(Path.Combine(root, "step-7")));
        Assert.True(Directory.Exists(Path.Combine(root, "step-7.partial")));
        Assert.False(File.Exists(Path.Combine(root, "step-7.partial", Checkpoint.ManifestFile)));
        Assert.Null(Checkpoint.Latest(root));

        // The next save of the step starts from a fresh partial folder and publishes a complete checkpoint.
        string folder = SaveSharded(units, world: 2, run: "crash");
        Assert.False(Directory.Exists(Path.Combine(root, "step-7.partial")));
        AssertBitEqual(units[1], Checkpoint.Load(folder, Spec).Units[1], "unit 1");
    }

    [Fact]
    public void Given_AStepSavedOnTwoRanksThenOnThree_When_Loaded_Then_OnlyTheThreeRankFilesRemain()
    {
        UnitState[] first = RandomUnits(8), second = RandomUnits(9);
        SaveSharded(first, world: 2);
        string folder = SaveSharded(second, world: 3);

        Assert.Equal(3, Checkpoint.Load(folder, Spec).Manifest.WorldSize);
        Assert.Equal(7, Directory.GetFiles(folder).Length); // 3 × 2 shard files + the manifest; no rank-of-2 file left behind
        AssertBitEqual(second[0], Checkpoint.Load(folder, Spec).Units[0], "unit 0");
        Assert.False(Directory.Exists(folder + ".old"));
    }

    /// <summary>What rank-local 8-bit state holds: each moment quantised block-wise from its own shard's first element, then dequantised.</summary>
    private static UnitState QuantisedLocally(UnitState shard)
    {
        int n = shard.Master.Length;
        var codes = new byte[n];
        var scales = new float[BlockwiseQuantization.Blocks(n)];
        float[] m = new float[n], v = new float[n];
        BlockwiseQuantization.Quantize(shard.ExpAvg, codes, scales, DynamicQuantizationMap.Signed);
        BlockwiseQuantization.Dequantize(codes, scales, m, DynamicQuantizationMap.Signed);
        BlockwiseQuantization.QuantizeSecondMoment(shard.ExpAvgSq, codes, scales);
        BlockwiseQuantization.DequantizeSecondMoment(codes, scales, v);
        return new UnitState(shard.Master, m, v);
    }

    [Fact]
    public void Given_8bitStateSavedOnTwoRanks_When_LoadedOnTwoRanks_Then_EachRankGetsItsShardQuantisedFromItsOwnStart_AndASecondRoundTripChangesNothing()
    {
        UnitState[] units = RandomUnits(10);
        string folder = SaveSharded(units, world: 2, OptimizerStateFormat.EightBit);
        Assert.Equal("8bit", Checkpoint.Load(folder, Spec).Manifest.OptimizerState);

        var loaded = new UnitState[2][];
        for (int rank = 0; rank < 2; rank++)
        {
            loaded[rank] = ShardedCheckpoint.LoadShard(folder, Spec, rank, 2).Shards;
            UnitState[] mine = ShardsOf(units, rank, 2);
            for (int u = 0; u < mine.Length; u++) AssertBitEqual(QuantisedLocally(mine[u]), loaded[rank][u], $"rank {rank} unit {u}");
        }

        // Floats that came out of 8-bit state go back in and come out unchanged: a resumed rank holds exactly what it saved.
        string again = CollectiveThreads.Run(2, c => ShardedCheckpoint.Save(Path.Combine(_root, "again"), Spec, Step, 42, c, u => loaded[c.Rank][u],
            optimizerState: OptimizerStateFormat.EightBit))[0];
        for (int rank = 0; rank < 2; rank++)
        {
            UnitState[] twice = ShardedCheckpoint.LoadShard(again, Spec, rank, 2).Shards;
            for (int u = 0; u < twice.Length; u++) AssertBitEqual(loaded[rank][u], twice[u], $"second round trip, rank {rank} unit {u}");
        }
    }

    [Fact]
    public void Given_8bitStateSavedOnTwoRanks_When_LoadedOnThree_Then_TheDequantisedFloatsAreReSharded()
    {
        string folder = SaveSharded(RandomUnits(11), world: 2, OptimizerStateFormat.EightBit);
        UnitState[] full = Checkpoint.Load(folder, Spec).Units;

        for (int rank = 0; rank < 3; rank++)
        {
            UnitState[] shards = ShardedCheckpoint.LoadShard(folder, Spec, rank, 3).Shards;
            UnitState[] expected = ShardsOf(full, rank, 3);
            for (int u = 0; u < shards.Length; u++) AssertBitEqual(expected[u], shards[u], $"rank {rank} unit {u}");
        }
    }

    [Fact]
    public void Given_ACheckpointOfAnotherModel_When_Loaded_Then_ItIsRefusedNamingBothModels()
    {
        string folder = SaveSharded(RandomUnits(12), world: 2);
        ModelSpec other = Spec with { Name = "tiny-gpt-wide" };

        var e = Assert.Throws<InvalidDataException>(() => ShardedCheckpoint.LoadShard(folder, other, 0, 2));
        var whole = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(folder, other));

        Assert.Contains("tiny-gpt", e.Message);
        Assert.Contains("tiny-gpt-wide", e.Message);
        Assert.Contains("tiny-gpt-wide", whole.Message);
    }

    [Fact]
    public void Given_AShardOfTheWrongLength_When_Saving_Then_ItIsRefusedNamingTheUnitAndNothingIsPublished()
    {
        UnitState[] units = RandomUnits(13);
        string root = Path.Combine(_root, "short");
        Exception?[] outcomes = CollectiveThreads.Run(2, c =>
        {
            UnitState[] whole = units; // a rank that passes its full units instead of its shards
            try
            {
                ShardedCheckpoint.Save(root, Spec, Step, 42, c, u => whole[u]);
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        });

        var e = Assert.IsType<ArgumentException>(outcomes[0]);
        Assert.Contains("unit 0", e.Message);
        Assert.Contains("ShardLayout", e.Message);
        Assert.False(Directory.Exists(Path.Combine(root, "step-7")));
    }

    [Fact]
    public void Given_AShardedManifest_When_Written_Then_ItNamesTheWorldSizeAndTheChecksumOfEveryRanksFiles()
    {
        string folder = SaveSharded(RandomUnits(14), world: 3);
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, Checkpoint.ManifestFile)));

        Assert.Equal(3, json.RootElement.GetProperty("world_size").GetInt32());
        var sha = json.RootElement.GetProperty("sha256").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
        string[] expected = [.. Enumerable.Range(0, 3).SelectMany(r => new[] { ShardedCheckpoint.ModelFileOf(r, 3), ShardedCheckpoint.OptimizerFileOf(r, 3) })];
        Assert.Equal(expected.Order(StringComparer.Ordinal), sha.Keys.Order(StringComparer.Ordinal));
        foreach (string file in expected) Assert.Equal(Checkpoint.Hash(Path.Combine(folder, file)), sha[file]);
        CheckpointManifest manifest = Checkpoint.Load(folder, Spec).Manifest;
        Assert.Equal(expected, ShardedCheckpoint.DataFilesOf(manifest));
        Assert.Equal(expected.Where(f => f.StartsWith("optimizer-", StringComparison.Ordinal)), ShardedCheckpoint.OptimizerFilesOf(manifest));
    }

    [Fact]
    public void Given_AnFp16RunsLossScale_When_SavedShardedAndLoaded_Then_EveryRankGetsItBack()
    {
        UnitState[] units = RandomUnits(15);
        var scale = new Execution.LossScaleState(1024, 17, 3, 1);
        string folder = CollectiveThreads.Run(2, c =>
        {
            UnitState[] mine = ShardsOf(units, c.Rank, 2);
            return ShardedCheckpoint.Save(Path.Combine(_root, "fp16"), Spec, Step, 42, c, u => mine[u], lossScale: scale);
        })[0];

        Assert.Equal(scale, ShardedCheckpoint.LoadShard(folder, Spec, 1, 2).Manifest.LossScale);
        Assert.Equal(42, ShardedCheckpoint.LoadShard(folder, Spec, 0, 3).Manifest.Seed);
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(-1, 2)]
    [InlineData(0, 0)]
    public void Given_ARankOutsideTheWorld_When_Loading_Then_ItIsRefusedNamingTheRank(int rank, int world)
    {
        string folder = SaveSharded(RandomUnits(16), world: 2);

        var e = Assert.ThrowsAny<ArgumentOutOfRangeException>(() => ShardedCheckpoint.LoadShard(folder, Spec, rank, world));

        Assert.Contains(world < 1 ? "world size" : $"Rank {rank}", e.Message);
    }

    [Fact]
    public void Given_AShardedCheckpoint_When_ExportedToHuggingFace_Then_TheFileEqualsTheExportOfTheSameUnitsFromOneProcess()
    {
        UnitState[] units = RandomUnits(5);
        string sharded = SaveSharded(units, world: 3);
        string single = Checkpoint.Save(Path.Combine(_root, "single"), Spec, Step, 42, u => units[u]);

        HuggingFaceExport.Export(sharded, Spec, Path.Combine(_root, "hf-sharded"));
        HuggingFaceExport.Export(single, Spec, Path.Combine(_root, "hf-single"));

        var fromShards = SafeTensors.Read(Path.Combine(_root, "hf-sharded", PretrainedWeights.SingleFile));
        var fromOne = SafeTensors.Read(Path.Combine(_root, "hf-single", PretrainedWeights.SingleFile));
        Assert.Equal(fromOne.Keys.Order(), fromShards.Keys.Order());
        foreach (var (name, tensor) in fromOne) Assert.Equal(tensor.Data, fromShards[name].Data);
    }

    [Fact]
    public void Given_AShardedFp32Checkpoint_When_ConvertedTo8bit_Then_EveryRanksOptimizerFileIsConvertedAndItLoadsOnAnyWorldSize()
    {
        UnitState[] units = RandomUnits(6);
        string sharded = SaveSharded(units, world: 2);
        string target = Path.Combine(_root, "converted");

        var result = CheckpointConversion.Convert(sharded, target, OptimizerStateFormat.EightBit);

        Assert.True(result.OptimizerAfter.Value < result.OptimizerBefore.Value);
        var (manifest, full) = Checkpoint.Load(target, Spec);
        Assert.Equal("8bit", manifest.OptimizerState);
        Assert.Equal(2, manifest.WorldSize);
        for (int u = 0; u < units.Length; u++)
        {
            // Master weights are copied as they are; the moments come back within 8-bit precision.
            Assert.Equal(units[u].Master, full[u].Master);
            float scale = units[u].ExpAvg.Max(Math.Abs);
            Assert.All(units[u].ExpAvg.Zip(full[u].ExpAvg), p => Assert.True(Math.Abs(p.First - p.Second) <= 0.05f * scale + 1e-6f));
        }
        var (_, shards) = ShardedCheckpoint.LoadShard(target, Spec, 0, 3);
        Assert.Equal(units.Length, shards.Length);
    }

    [Fact]
    public void Given_a_sharded_checkpoint_in_the_layer_order_before_2026_12_06_When_loaded_Then_each_slice_comes_back_in_its_place()
    {
        // Today's units, and the same values laid out as the shard files of that time held them (each weight, then its bias).
        UnitState[] units = RandomUnits(9);
        var current = ParameterLayout.ForLayer(Spec);
        var legacy = ParameterLayout.ForLayerBefore20261206(Spec);
        Assert.Contains(current.Slices, s => legacy.Find(s.Name)!.Offset != s.Offset);
        UnitState Legacy(UnitState unit)
        {
            float[] Order(float[] values)
            {
                var moved = new float[values.Length];
                foreach (ParameterSlice s in current.Slices) Array.Copy(values, s.Offset, moved, legacy.Find(s.Name)!.Offset, s.Elements);
                return moved;
            }
            return new UnitState(Order(unit.Master), Order(unit.ExpAvg), Order(unit.ExpAvgSq));
        }
        UnitState[] saved = [.. units.Select((unit, u) => u < Spec.NumLayers ? Legacy(unit) : unit)];
        string folder = SaveSharded(saved, world: 2);
        // A manifest of that time: no layer order.
        string manifestPath = Path.Combine(folder, Checkpoint.ManifestFile);
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        Assert.True(manifest.Remove("layer_order"), "the manifest names its layer order");
        File.WriteAllText(manifestPath, manifest.ToJsonString());

        var (_, full) = Checkpoint.Load(folder, Spec);
        for (int u = 0; u < units.Length; u++) AssertBitEqual(units[u], full[u], $"unit {u}");
        for (int rank = 0; rank < 2; rank++)
        {
            var (_, shards) = ShardedCheckpoint.LoadShard(folder, Spec, rank, 2);
            UnitState[] expected = ShardsOf(units, rank, 2);
            for (int u = 0; u < units.Length; u++) AssertBitEqual(expected[u], shards[u], $"rank {rank} unit {u}");
        }
    }
}
