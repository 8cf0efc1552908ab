using System.CommandLine;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Optim;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios convert-checkpoint --from DIR --to DIR --optimizer-state fp32|8bit</c>: a checkpoint with its Adam moments in another format.</summary>
public static class ConvertCheckpointCommand
{
    public static Command Create(CliIo io)
    {
        var from = new Option<string>("--from") { Description = "The checkpoint folder to read (runs/<id>/checkpoints/step-N); it is not changed", Required = true };
        var to = new Option<string>("--to") { Description = "The checkpoint folder to create (must not exist; its parent must)", Required = true };
        var state = new Option<string>("--optimizer-state")
        {
            Description = "The moments' format in the new checkpoint: fp32, or 8bit (block-wise quantised, about half the bytes of the whole state)",
            Required = true,
        };
        state.AcceptOnlyFromAmong("fp32", "8bit");
        var command = new Command("convert-checkpoint",
            "Copy a checkpoint with its optimizer state converted between fp32 and 8-bit (master weights are copied exactly; 8-bit moments are dequantised to fp32 when converting back).")
        {
            from, to, state,
        };
        command.SetAction(r =>
        {
            OptimizerStateFormat format = OptimizerStateFormats.Parse(r.GetValue(state))!.Value;
            CheckpointConversionResult result;
            try
            {
                result = CheckpointConversion.Convert(r.GetValue(from)!, r.GetValue(to)!, format);
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message} (nothing was left under --to)");
                return ExitCodes.Failure;
            }
            io.Console.MarkupLineInterpolated(
                $"Converted step {result.Step} of {result.Model} from {result.From.Name()} to {result.To.Name()} optimizer state ({result.Tensors} tensors; optimizer file {result.OptimizerBefore.MiB:0.##} MiB → {result.OptimizerAfter.MiB:0.##} MiB) into {result.Target}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
