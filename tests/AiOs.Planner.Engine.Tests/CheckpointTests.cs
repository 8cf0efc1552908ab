using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-ckpt-").FullName;
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private TrainingSettings Settings() => LayerwiseTrainerTests.Small() with
    {
        ParamOffload = OffloadTier.Nvme,
        OptimizerOffload = OffloadTier.Nvme,
        NvmePath = Path.Combine(_root, "nvme"),
    };

    private static double[] Train(LayerwiseTrainer trainer, int from, int to, TrainingSettings settings)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new List<double>();
        for (int s = from; s < to; s++)
            losses.Add(trainer.Step(m => data.Sample(42, s, m, settings.MicroBatch, settings.SeqLen)).Loss);
        return losses.ToArray();
    }

    [Fact]
    public void Given_ACheckpointAfterThreeSteps_When_ANewRunResumesFromIt_Then_ItContinuesTheSameLossTrajectory()
    {
        TrainingSettings settings = Settings();
        double[] straight;
        using (var t = new LayerwiseTrainer(Spec, settings, LayerwiseTrainerTests.Options() with { RunId = "a" }))
            straight = Train(t, 0, 6, settings);

        string folder;
        using (var t = new LayerwiseTrainer(Spec, settings, LayerwiseTrainerTests.Options() with { RunId = "b" }))
        {
            Train(t, 0, 3, settings);
            folder = t.SaveCheckpoint(Path.Combine(_root, "checkpoints"));
        }
        double[] resumed;
        using (var t = new LayerwiseTrainer(Spec, settings, LayerwiseTrainerTests.Options() with { RunId = "c" }))
        {
            t.RestoreCheckpoint(folder);
            Assert.Equal(3, t.CompletedSteps);
            resumed = Train(t, 3, 6, settings);
        }

        Assert.Equal(straight[3..], resumed);
        Assert.Equal("step-3", Path.GetFileName(folder));
        Assert.Equal(folder, Checkpoint.Latest(Path.Combine(_root, "checkpoints")));
    }

    [Fact]
    public void Given_ACheckpointWithAFlippedByte_When_Restored_Then_ItIsRefusedNamingTheChecksum()
    {
        TrainingSettings settings = Settings();
        using var t = new LayerwiseTrainer(Spec, settings, LayerwiseTrainerTests.Options());
        Train(t, 0, 1, settings);
        string folder = t.SaveCheckpoint(Path.Combine(_root, "checkpoints"));
        string model = Path.Combine(folder, Checkpoint.ModelFile);
        byte[] bytes = File.ReadAllBytes(model);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(model, bytes);

        var e = Assert.Throws<InvalidDataException>(() => t.RestoreCheckpoint(folder));

        Assert.Contains("corrupted", e.Message);
        Assert.Contains(Checkpoint.ModelFile, e.Message);
    }

    [Fact]
    public void Given_Tensors_When_WrittenAsSafetensors_Then_TheHeaderIsAlignedAndTheyReadBackByName()
    {
        string path = Path.Combine(_root, "t.safetensors");
        SafeTensors.Write(path, [("a", [2, 3], [1, 2, 3, 4, 5, 6]), ("b.c", [1], [7])]);

        var tensors = SafeTensors.Read(path);

        Assert.Equal([2L, 3], tensors["a"].Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], tensors["a"].Data);
        Assert.Equal([7f], tensors["b.c"].Data);
        long header = BitConverter.ToInt64(File.ReadAllBytes(path), 0);
        Assert.Equal(0, header % 8);
        Assert.Equal(8 + header + 28, new FileInfo(path).Length);
    }

    [Fact]
    public void Given_AFolderWithoutAManifest_When_Loaded_Then_ItIsRefused()
    {
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(_root, Spec));

        Assert.Contains("checkpoint.json", e.Message);
    }
}
