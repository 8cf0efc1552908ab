using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Cli.Rendering;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios bench-dispatch</c>: the host's cost per TorchSharp call on a device, from one operation to a decoder layer's
/// passes (<see cref="DispatchProbe"/>), so a launch-bound step's host time can be read as operations, autograd nodes and
/// autograd calls.
/// </summary>
public static class BenchDispatchCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var device = new Option<string>("--device") { Description = "cuda, cuda:N or cpu", DefaultValueFactory = _ => "cuda" };
        var precision = new Option<Precision>("--precision") { Description = "Precision of the tensors and the layer: fp32|bf16|fp16", DefaultValueFactory = _ => Precision.Bf16, CustomParser = SettingsOptions.ParseEnum<Precision> };
        var model = new Option<string?>("--model") { Description = "Model whose decoder layer's passes are timed (name or path; default gpt2-xl; 'none' for the operation rows alone)" };
        var microBatch = new Option<int>("--micro-batch") { Description = "Micro-batch of the layer's input (small: the passes are then the host's dispatch)", DefaultValueFactory = _ => 1 };
        var seqLen = new Option<int>("--seq-len") { Description = "Sequence length of the layer's input", DefaultValueFactory = _ => 8 };
        var calls = new Option<int>("--calls") { Description = "Calls per timed sample of the operation rows", DefaultValueFactory = _ => 1000 };
        var repeats = new Option<int>("--repeats") { Description = "Timed samples per row (the median is kept)", DefaultValueFactory = _ => 7 };
        var graph = new Option<bool>("--graph") { Description = "Also capture the layer's forward in a CUDA graph and time its replay against the eager pass (CUDA only; an experiment)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("bench-dispatch", "Time the host's cost per call on a device: one operation, one recording autograd, one backward node, one autograd call, and a decoder layer's forward and backward (what a launch-bound step is made of).")
        {
            device, precision, model, microBatch, seqLen, calls, repeats, graph, json,
        };
        command.SetAction(r =>
        {
            bool quiet = r.GetValue(json);
            try
            {
                string where = r.GetValue(device)!;
                if (where is not ("cpu" or "cuda" or "cuda:0"))
                    throw new ArgumentException(where.StartsWith("cuda:", StringComparison.Ordinal)
                        ? $"--device {where}: the probe times device 0 (its waits and driver calls are device 0's); make that GPU device 0 with CUDA_VISIBLE_DEVICES and pass --device cuda."
                        : $"--device {where}: write cpu or cuda.");
                string name = r.GetValue(model) ?? "gpt2-xl";
                var spec = name.Equals("none", StringComparison.OrdinalIgnoreCase) ? null : ModelCatalog.Default.Load(name);
                int mb = r.GetValue(microBatch), seq = r.GetValue(seqLen), n = r.GetValue(calls), reps = r.GetValue(repeats);
                if (mb < 1 || seq < 1) throw new ArgumentException($"--micro-batch {mb} --seq-len {seq}: give 1 or more for each.");
                if (spec is not null && seq > spec.MaxSeqLen) throw new ArgumentException($"--seq-len {seq} exceeds {spec.Name}'s {spec.MaxSeqLen} positions; give {spec.MaxSeqLen} or less.");
                if (n < 1 || reps < 1) throw new ArgumentException($"--calls {n} --repeats {reps}: give 1 or more for each.");
                if (r.GetValue(graph) && (where == "cpu" || spec is null))
                    throw new ArgumentException("--graph captures the layer's forward on a GPU: give --device cuda and a --model.");
                var options = new DispatchProbeOptions
                {
                    Device = where, Precision = r.GetValue(precision), Calls = n, Repeats = reps,
                    Layer = spec, LayerShape = (mb, seq), Graph = r.GetValue(graph),
                };
                // A device that does not start is the user's to fix (exit 2); a failure while measuring is not (exit 1).
                TorchRuntime.EnsureReady(TorchRuntime.DeviceTypeOf(where));
                DispatchMeasurement m;
                try
                {
                    m = DispatchProbe.Measure(options, quiet ? null : line => io.Console.MarkupLineInterpolated($"[grey]{line}[/]"));
                }
                catch (Exception e) when (e is InvalidOperationException or System.Runtime.InteropServices.ExternalException or NotSupportedException)
                {
                    io.Errors.MarkupLineInterpolated($"[red]error:[/] the probe failed while measuring: {e.Message}");
                    return ExitCodes.Failure;
                }
                if (quiet) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(m, options)));
                else Render(io.Console, m);
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is DescriptionException or ArgumentException or InvalidOperationException or NotSupportedException)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }

    private static JsonObject Json(DispatchMeasurement m, DispatchProbeOptions options) => new()
    {
        ["device"] = m.Device,
        ["precision"] = options.Precision.ToString().ToLowerInvariant(),
        ["repeats"] = options.Repeats,
        ["layer"] = m.Layer,
        ["rows"] = new JsonArray(m.Costs.Select(c => (JsonNode)new JsonObject
        {
            ["name"] = c.Name, ["what"] = c.What, ["host_us"] = Math.Round(c.HostMicroseconds, 2),
            ["managed_bytes"] = Math.Round(c.AllocatedBytes, 1), ["calls_per_sample"] = c.CallsPerSample,
        }).ToArray()),
    };

    private static void Render(IAnsiConsole console, DispatchMeasurement m)
    {
        double? op = m.Costs.FirstOrDefault(c => c.Name == "op_scoped")?.HostMicroseconds;
        var table = new Table().AddTextColumns("row", "host µs a call", "managed bytes a call", "÷ op_scoped");
        foreach (var c in m.Costs)
            table.AddTextRow(c.Name, c.HostMicroseconds.ToString("0.0", CultureInfo.InvariantCulture), c.AllocatedBytes.ToString("0", CultureInfo.InvariantCulture),
                op is { } o && o > 0 ? (c.HostMicroseconds / o).ToString("0.0", CultureInfo.InvariantCulture) : "");
        console.Write(table);
        foreach (var c in m.Costs) console.MarkupLineInterpolated($"[grey]{c.Name}: {c.What}[/]");
        console.MarkupLineInterpolated($"[grey]{m.Device}{(m.Layer is null ? "" : "; " + m.Layer)}. Host time until the calls return (the device drained before each sample, not after).[/]");
    }
}
