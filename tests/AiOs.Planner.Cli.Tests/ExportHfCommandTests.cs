using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

public sealed class ExportHfCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-export-hf-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Tokens(string json = """{"input_ids": [[72, 101, 108, 108, 111, 44, 32, 119], [111, 114, 108, 100, 33, 32, 72, 105]]}""")
    {
        string path = Path.Combine(_root, "tokens.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Given_ATrainedRun_When_ExportedTrainedFromWithItsConfigAndExportedAgain_Then_LogitsOfTheExportAndOfTheCheckpointAreIdentical()
    {
        string runs = Path.Combine(_root, "runs"), hf = Path.Combine(_root, "hf"), hf2 = Path.Combine(_root, "hf2");
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1", "--precision", "fp32",
            "--runs-dir", runs, "--run-id", "one", "--save-every", "2", "--json");
        var export = CliRunner.Run("export-hf", Path.Combine(runs, "one"), "--model", "tiny-gpt", "--out", hf);
        // As on the GPU machine: the description is read from the exported config.json, the weights from its folder.
        var again = CliRunner.Run("train", "--model", Path.Combine(hf, "config.json"), "--init-from", hf, "--steps", "1", "--seq-len", "16", "--micro-batch", "1",
            "--precision", "fp32", "--runs-dir", runs, "--run-id", "two", "--save-every", "1", "--json");
        var export2 = CliRunner.Run("export-hf", Path.Combine(runs, "two"), "--model", Path.Combine(hf, "config.json"), "--out", hf2);

        var fromExport = CliRunner.Run("logits", "--model", Path.Combine(hf2, "config.json"), "--init-from", hf2, "--tokens", Tokens(), "--out", Path.Combine(_root, "a.safetensors"));
        var fromCheckpoint = CliRunner.Run("logits", "--model", Path.Combine(hf, "config.json"), "--init-from", Path.Combine(runs, "two", "checkpoints", "step-1"),
            "--tokens", Tokens(), "--out", Path.Combine(_root, "b.safetensors"));

        Assert.Equal([ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok],
            new[] { train, export, again, export2, fromExport, fromCheckpoint }.Select(r => r.ExitCode));
        Assert.Contains("as GPT-2", export.Console);
        Assert.DoesNotContain("warning", again.Console + export2.Console + fromExport.Console, StringComparison.OrdinalIgnoreCase);
        using JsonDocument a = JsonDocument.Parse(File.ReadAllText(Path.Combine(_root, "a.json"))), b = JsonDocument.Parse(File.ReadAllText(Path.Combine(_root, "b.json")));
        Assert.Equal(b.RootElement.GetProperty("loss").GetDouble(), a.RootElement.GetProperty("loss").GetDouble());
        Assert.Equal(14, a.RootElement.GetProperty("loss_tokens").GetInt32());
        // Same logits bit for bit; the files differ only in the model name recorded in their metadata.
        var la = Engine.Checkpoints.SafeTensors.Read(Path.Combine(_root, "a.safetensors"))["logits"];
        var lb = Engine.Checkpoints.SafeTensors.Read(Path.Combine(_root, "b.safetensors"))["logits"];
        Assert.Equal(lb.Shape, la.Shape);
        Assert.Equal(lb.Data, la.Data);
    }

    [Fact]
    public void Given_AnOutFolderWithFiles_When_Exported_Then_ItIsAUsageErrorAndTheFolderIsUntouched()
    {
        string runs = Path.Combine(_root, "runs"), busy = Path.Combine(_root, "busy");
        CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--micro-batch", "1", "--runs-dir", runs, "--run-id", "one", "--save-every", "1", "--json");
        Directory.CreateDirectory(busy);
        File.WriteAllText(Path.Combine(busy, "notes.txt"), "keep");

        var result = CliRunner.Run("export-hf", Path.Combine(runs, "one"), "--model", "tiny-gpt", "--out", busy);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("already holds files", result.Console);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(busy).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_AFolderWithoutCheckpoints_When_Exported_Then_ItIsAUsageErrorNamingSaveEvery()
    {
        var result = CliRunner.Run("export-hf", _root, "--model", "tiny-gpt", "--out", Path.Combine(_root, "hf"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--save-every", result.Console);
    }
}
