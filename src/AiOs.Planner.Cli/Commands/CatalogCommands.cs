using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios models</c>: the bundled and local model descriptions.</summary>
public static class ModelsCommand
{
    public static Command Create(CliIo io)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON on stdout" };
        var command = new Command("models", "List the models that --model accepts by name.") { json };
        command.SetAction(r =>
        {
            var models = ModelCatalog.Default.Names().Select(ModelCatalog.Default.Load).ToList();
            if (r.GetValue(json))
            {
                var array = new JsonArray(models.Select(m => (JsonNode)new JsonObject
                {
                    ["name"] = m.Name, ["params"] = m.TotalParameters, ["layers"] = m.NumLayers, ["hidden_size"] = m.HiddenSize,
                    ["heads"] = m.NumHeads, ["kv_heads"] = m.KvHeads, ["ffn_size"] = m.FfnSize, ["vocab_size"] = m.VocabSize,
                }).ToArray());
                io.Stdout.Write(DeepSpeedConfig.ToJson(new JsonObject { ["models"] = array }));
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("name", "parameters", "layers", "hidden", "heads (kv)", "ffn", "vocab");
            foreach (var m in models.OrderBy(m => m.TotalParameters))
                table.AddTextRow(m.Name, m.TotalParameters.ToString("N0"), m.NumLayers.ToString(), m.HiddenSize.ToString(),
                    $"{m.NumHeads} ({m.KvHeads})", $"{m.FfnSize} {m.FfnKind.ToString().ToLowerInvariant()}", m.VocabSize.ToString());
            io.Console.Write(table);
            io.Console.MarkupLine("A path to a models/*.json file or a Hugging Face config.json works wherever a name does.");
            return ExitCodes.Ok;
        });
        return command;
    }
}

/// <summary><c>aios profiles</c>: the bundled and local hardware profiles.</summary>
public static class ProfilesCommand
{
    public static Command Create(CliIo io)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON on stdout" };
        var command = new Command("profiles", "List the hardware profiles that --hardware accepts by name.") { json };
        command.SetAction(r =>
        {
            var profiles = ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).ToList();
            if (r.GetValue(json))
            {
                var array = new JsonArray(profiles.Select(p => (JsonNode)new JsonObject
                {
                    ["name"] = p.Name, ["nodes"] = p.Nodes, ["gpus_per_node"] = p.GpusPerNode, ["gpu"] = p.Gpu?.Model,
                    ["gpu_memory_bytes"] = p.Gpu?.Memory.Value, ["ram_bytes"] = p.Cpu.Ram.Value,
                    ["nvme_bytes"] = p.Drives.Sum(d => d.Capacity.Value), ["source"] = p.Source.ToString().ToLowerInvariant(),
                }).ToArray());
                io.Stdout.Write(DeepSpeedConfig.ToJson(new JsonObject { ["profiles"] = array }));
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("name", "GPUs", "GPU memory", "RAM", "NVMe", "read / write GB/s", "source");
            foreach (var p in profiles)
            {
                string drives = p.Drives.Count == 0 ? "-" : string.Join(" + ", p.Drives.Select(d => $"{d.Count}× {d.Read.PeakGbps.Value:0.#}/{d.Write.PeakGbps.Value:0.#}"));
                table.AddTextRow(p.Name, p.HasGpu ? $"{p.Nodes}×{p.GpusPerNode} {p.Gpu!.Model}" : "none",
                    p.Gpu?.Memory.ToString() ?? "-", p.Cpu.Ram.ToString(),
                    p.Drives.Aggregate(Units.Bytes.Zero, (s, d) => s + d.Capacity).ToString(), drives, p.Source.ToString().ToLowerInvariant());
            }
            io.Console.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }
}
