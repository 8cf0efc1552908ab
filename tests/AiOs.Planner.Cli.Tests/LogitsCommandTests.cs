using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

public sealed class LogitsCommandTests : IDisposable
{
    private readonly TempDir _root = new("aios-logits-");

    public void Dispose() => _root.Dispose();

    private string Tokens(string json = """{"input_ids": [[72, 101, 108, 108, 111, 44, 32, 119], [111, 114, 108, 100, 33, 32, 72, 105]]}""")
    {
        string path = _root.Combine("tokens.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Given_RaggedTokenRows_When_LogitsAreAsked_Then_ItIsAUsageErrorNamingTheRowAndNothingIsWritten()
    {
        var result = CliRunner.Run("logits", "--model", "tiny-gpt", "--tokens", Tokens("""{"input_ids": [[1, 2, 3], [4, 5]]}"""), "--out", _root.Combine("l.safetensors"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("input_ids[1] has 2 ids", result.Console);
        Assert.False(File.Exists(_root.Combine("l.safetensors")));
    }

    [Fact]
    public void Given_AnOutNameEndingInJson_When_LogitsAreAsked_Then_ItIsRefusedBeforeAnyWork()
    {
        var result = CliRunner.Run("logits", "--model", "tiny-gpt", "--tokens", Tokens(), "--out", _root.Combine("logits.json"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("logits.safetensors", result.Console);
    }

    [Fact]
    public void Given_SeededWeightsInBf16_When_LogitsAreAsked_Then_TheSummaryRecordsThePrecisionAndTheSeed()
    {
        var result = CliRunner.Run("logits", "--model", "tiny-llama", "--tokens", Tokens(), "--precision", "bf16", "--seed", "5", "--out", _root.Combine("l.safetensors"));

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(_root.Combine("l.json")));
        Assert.Equal("bf16", doc.RootElement.GetProperty("precision").GetString());
        Assert.Equal(5, doc.RootElement.GetProperty("seed").GetInt64());
        Assert.InRange(doc.RootElement.GetProperty("loss").GetDouble(), 4, 7);
    }
}
