using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

public sealed class ExportHfCommandTests : IDisposable
{
    private readonly TempDir _root = new("aios-export-hf-");

    public void Dispose() => _root.Dispose();

    private string Tokens(string json = """{"input_ids": [[72, 101, 108, 108, 111, 44, 32, 119], [111, 114, 108, 100, 33, 32, 72, 105]]}""")
    {
        string path = _root.Combine("tokens.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Given_ATrainedRun_When_ExportedTrainedFromWithItsConfigAndExportedAgain_Then_LogitsOfTheExportAndOfTheCheckpointAreIdentical()
    {
        string runs = _root.Combine("runs"), hf = _root.Combine("hf"), hf2 = _root.Combine("hf2");
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1", "--precision", "fp32",
            "--runs-dir", runs, "--run-id", "one", "--save-every", "2", "--json");
        var export = CliRunner.Run("export-hf", Path.Combine(runs, "one"), "--model", "tiny-gpt", "--out", hf);
        // As on the GPU machine: the description is read from the exported config.json, the weights from its folder.
        var again = CliRunner.Run("train", "--model", Path.Combine(hf, "config.json"), "--init-from", hf, "--steps", "1", "--seq-len", "16", "--micro-batch", "1",
            "--precision", "fp32", "--runs-dir", runs, "--run-id", "two", "--save-every", "1", "--json");
        var export2 = CliRunner.Run("export-hf", Path.Combine(runs, "two"), "--model", Path.Combine(hf, "config.json"), "--out", hf2);

        var fromExport = CliRunner.Run("logits", "--model", Path.Combine(hf2, "config.json"), "--init-from", hf2, "--tokens", Tokens(), "--out", _root.Combine("a.safetensors"));
        var fromCheckpoint = CliRunner.Run("logits", "--model", Path.Combine(hf, "config.json"), "--init-from", Path.Combine(runs, "two", "checkpoints", "step-1"),
            "--tokens", Tokens(), "--out", _root.Combine("b.safetensors"));

        Assert.Equal([ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok, ExitCodes.Ok],
            new[] { train, export, again, export2, fromExport, fromCheckpoint }.Select(r => r.ExitCode));
        Assert.Contains("as GPT-2", export.Console);
        Assert.DoesNotContain("warning", again.Console + export2.Console + fromExport.Console, StringComparison.OrdinalIgnoreCase);
        using JsonDocument a = JsonDocument.Parse(File.ReadAllText(_root.Combine("a.json"))), b = JsonDocument.Parse(File.ReadAllText(_root.Combine("b.json")));
        Assert.Equal(b.RootElement.GetProperty("loss").GetDouble(), a.RootElement.GetProperty("loss").GetDouble());
        Assert.Equal(14, a.RootElement.GetProperty("loss_tokens").GetInt32());
        // Same logits bit for bit; the files differ only in the model name recorded in their metadata.
        var la = Engine.Checkpoints.SafeTensors.Read(_root.Combine("a.safetensors"))["logits"];
        var lb = Engine.Checkpoints.SafeTensors.Read(_root.Combine("b.safetensors"))["logits"];
        Assert.Equal(lb.Shape, la.Shape);
        Assert.Equal(lb.Data, la.Data);
    }

    [Fact]
    public void Given_AnOutFolderWithFiles_When_Exported_Then_ItIsAUsageErrorAndTheFolderIsUntouched()
    {
        string runs = _root.Combine("runs"), busy = _root.Combine("busy");
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
        var result = CliRunner.Run("export-hf", _root.Path, "--model", "tiny-gpt", "--out", _root.Combine("hf"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--save-every", result.Console);
    }
}
