using System.CommandLine;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios logits</c>: one forward pass of the training model on a fixed batch, for comparison with another implementation.</summary>
public static class LogitsCommand
{
    public static Command Create(CliIo io)
    {
        var model = new Option<string>("--model", "-m") { Description = "Bundled model name, or a path to a models/*.json or Hugging Face config.json", Required = true };
        var initFrom = new Option<string?>("--init-from") { Description = "Weights to evaluate: a .safetensors file, a Hugging Face folder or a checkpoint folder (default: the seeded initialisation)" };
        var seed = new Option<long>("--seed") { Description = "Seed of the initial weights without --init-from", DefaultValueFactory = _ => 1234 };
        var tokens = new Option<string>("--tokens") { Description = "JSON file {\"input_ids\": [[id, …], …]}: equal-length rows", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Logits file to write (safetensors, F32 [batch, seq, vocab]); the loss goes to the same name with .json", Required = true };
        var device = new Option<string>("--device") { Description = "cpu|cuda|cuda:N", DefaultValueFactory = _ => "cpu" };
        var precision = new Option<Precision>("--precision") { Description = "fp32|bf16|fp16: the precision weights are held and computed in", DefaultValueFactory = _ => Precision.Fp32, CustomParser = SettingsOptions.ParseEnum<Precision> };
        var command = new Command("logits", "Run one forward pass on a fixed batch; write the logits (safetensors) and the next-token loss (JSON), as transformers computes them with labels=input_ids.")
        {
            model, initFrom, seed, tokens, output, device, precision,
        };
        command.SetAction(r =>
        {
            ModelSpec spec = ModelCatalog.Default.Load(r.GetValue(model)!);
            string outPath = r.GetValue(output)!;
            try
            {
                Evaluation.SummaryPath(outPath);
                var request = new EvaluationRequest
                {
                    Model = spec,
                    InputIds = Evaluation.ReadIds(r.GetValue(tokens)!, spec),
                    InitFrom = r.GetValue(initFrom),
                    Seed = r.GetValue(seed),
                    Device = r.GetValue(device)!,
                    Precision = r.GetValue(precision),
                };
                EvaluationResult result = Evaluation.Run(request);
                Evaluation.Write(outPath, result, request);
                foreach (string warning in result.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
                string loss = result.Loss is { } l ? $"loss {l:0.000000} over {result.LossTokens} positions" : "no loss (one-token rows)";
                // The shape goes in as a hole: holes are escaped, literal brackets would be read as markup.
                string shape = $"[{result.Batch}, {result.SeqLen}, {result.Vocab}]";
                io.Console.MarkupLineInterpolated($"Logits {shape} to {outPath}; {loss}; summary {Evaluation.SummaryPath(outPath)}.");
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException or NotSupportedException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }
}
