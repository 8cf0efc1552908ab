using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Units;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios bench-collectives --gpus N</c>: the bus bandwidth of the collectives <c>aios train --gpus N</c> uses (all-gather,
/// reduce-scatter, all-reduce of bf16 buffers), measured over N ranks on this host (NCCL on GPUs, shared memory between
/// CPU processes), against the profile's <c>gpu_link.gbps</c> that the simulator prices them with.
/// </summary>
public static class BenchCollectivesCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var gpus = new Option<int>("--gpus") { Description = "Ranks: one per GPU (on --device cpu, processes)", Required = true };
        var device = new Option<string>("--device") { Description = "cuda (NCCL, one GPU per rank) | cpu (shared memory between processes)", DefaultValueFactory = _ => "cuda" };
        var maxSize = SizeOption.Create("--max-size", "Largest buffer (the whole gathered or reduced buffer); sizes grow ×4 from 1M (default 256M)", Bytes.FromMiB(256));
        var repeats = new Option<int>("--repeats") { Description = "Timed calls per size; the median is kept (default 5)", DefaultValueFactory = _ => 5 };
        var hardware = new Option<string?>("--hardware") { Description = "A profile whose gpu_link.gbps the bus bandwidth is compared with" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("bench-collectives", "Measure the bus bandwidth of all-gather, reduce-scatter and all-reduce over N GPUs of this host (or N CPU processes) against a profile's GPU link.")
        {
            gpus, device, maxSize, repeats, hardware, json,
        };
        command.SetAction(r =>
        {
            int world = r.GetValue(gpus);
            if (world < 2) throw new DescriptionException($"--gpus {world}: collectives need at least 2 ranks.");
            string on = r.GetValue(device)!;
            if (on is not ("cpu" or "cuda")) throw new DescriptionException($"--device '{on}': use cuda or cpu.");
            if (r.GetValue(repeats) < 1) throw new DescriptionException($"--repeats {r.GetValue(repeats)}: must be at least 1.");
            var profile = r.GetValue(hardware) is { Length: > 0 } h ? Hardware.ProfileCatalog.Default.Load(h) : null;
            var rank = RankEnvironment.Current();
            if (rank is null)
            {
                // This process is the launcher: the same command, once per rank; rank 0 prints the result.
                return TrainRanks.LaunchSelf(io, [.. r.Tokens.Select(t => t.Value)], world);
            }
            TorchRuntime.EnsureReady(on == "cpu" ? TorchSharp.DeviceType.CPU : TorchSharp.DeviceType.CUDA);
            using ICollectives group = TrainRanks.Join(rank, on);
            var sizes = new List<long>();
            for (long s = 1L << 20; s <= r.GetValue(maxSize).Value; s *= 4) sizes.Add(s);
            if (sizes.Count == 0) sizes.Add(r.GetValue(maxSize).Value);
            var place = on == "cpu" ? TorchSharp.torch.CPU : new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, rank.LocalRank);
            var rows = CollectiveBenchmark.Run(group, place, sizes, r.GetValue(repeats));
            if (rank.Rank != 0) return ExitCodes.Ok;
            double? link = profile?.GpuLink?.Gbps.Value;
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(rows, on, link, profile?.Name)));
            else Render(io.Console, rows, on, link, profile?.Name);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Name(CollectiveKind kind) => kind switch
    {
        CollectiveKind.AllGather => "all_gather",
        CollectiveKind.ReduceScatter => "reduce_scatter",
        _ => "all_reduce",
    };

    private static JsonObject Json(IReadOnlyList<CollectiveTiming> rows, string device, double? link, string? profile) => new()
    {
        ["device"] = device,
        ["ranks"] = rows.Count > 0 ? rows[0].Ranks : 0,
        ["profile"] = profile,
        ["profile_gpu_link_gbps"] = link,
        ["rows"] = new JsonArray([.. rows.Select(x => (JsonNode)new JsonObject
        {
            ["collective"] = Name(x.Kind),
            ["bytes"] = x.Bytes,
            ["seconds"] = x.Seconds,
            ["algorithm_gbps"] = Math.Round(x.AlgorithmGBps, 3),
            ["bus_gbps"] = Math.Round(x.BusGBps, 3),
            ["of_profile_link"] = link is { } l && l > 0 ? Math.Round(x.BusGBps / l, 3) : null,
        })]),
    };

    private static void Render(IAnsiConsole console, IReadOnlyList<CollectiveTiming> rows, string device, double? link, string? profile)
    {
        var table = new Table().Title($"Collectives over {(rows.Count > 0 ? rows[0].Ranks : 0)} ranks ({(device == "cpu" ? "shared memory between CPU processes" : "NCCL")}), bf16, median");
        table.AddColumns("collective", "buffer", "time", "algorithm GB/s", "bus GB/s");
        if (link is not null) table.AddColumn($"of {profile}'s link");
        foreach (var x in rows)
        {
            var cells = new List<string> { Name(x.Kind), new Bytes(x.Bytes).ToString(), $"{x.Seconds * 1e3:0.###} ms", $"{x.AlgorithmGBps:0.00}", $"{x.BusGBps:0.00}" };
            if (link is { } l) cells.Add(l > 0 ? $"{x.BusGBps / l:P0}" : "-");
            table.AddRow([.. cells.Select(Markup.Escape)]);
        }
        console.Write(table);
        if (link is { } figure)
            console.MarkupLineInterpolated($"The simulator prices a collective of B bytes at B × (n−1)/n ÷ {figure:0.#} GB/s (gpu_link.gbps): compare the bus GB/s of the largest buffers with it.");
    }
}
