using System.CommandLine;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Models;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios export-hf CHECKPOINT_OR_RUN_DIR --model M --out DIR</c>: a checkpoint as a Hugging Face model folder.</summary>
public static class ExportHfCommand
{
    public static Command Create(CliIo io)
    {
        var source = new Argument<string>("checkpoint-or-run-dir") { Description = "A checkpoint folder (runs/<id>/checkpoints/step-N) or a run folder (its newest checkpoint)" };
        var model = new Option<string>("--model", "-m") { Description = "The model the checkpoint was trained as: bundled name, models/*.json or Hugging Face config.json", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Folder to create with model.safetensors and config.json (must not exist, or be empty)", Required = true };
        var command = new Command("export-hf", "Write a checkpoint as a Hugging Face model folder (GPT-2 or Llama naming, fp32) that transformers' from_pretrained loads.")
        {
            source, model, output,
        };
        command.SetAction(r =>
        {
            ModelSpec spec = ModelCatalog.Default.Load(r.GetValue(model)!);
            HfExportResult result;
            try
            {
                result = HuggingFaceExport.Export(r.GetValue(source)!, spec, r.GetValue(output)!);
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or NotSupportedException or FileNotFoundException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            foreach (string warning in result.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
            io.Console.MarkupLineInterpolated(
                $"Exported step {result.Step} of {result.Checkpoint} as {PretrainedNames.Describe(result.Family)} ({result.Tensors} tensors, fp32) to {result.Folder}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
