using System.Text.Json.Nodes;

namespace AiOs.Planner.Storage;

/// <summary>
/// The <c>aios check-nvme --json</c> document and the leftover entries <c>aios clean --json</c> lists, built in one
/// place so the CLI and the server's API answer with the same fields.
/// </summary>
public static class NvmeCheckDocument
{
    /// <summary>The check-nvme document; <paramref name="decision"/> null when no plan sized the swap files.</summary>
    public static JsonObject Of(NvmeCheckResult check, FallbackDecision? decision)
    {
        ArgumentNullException.ThrowIfNull(check);
        var f = check.Facts;
        return new JsonObject
        {
            ["path"] = check.Path,
            ["usable"] = check.Usable,
            ["created"] = check.Created,
            ["required_bytes"] = check.Required.Value,
            ["free_bytes"] = f?.Free.Value,
            ["safety_factor"] = check.SafetyFactor,
            ["needs"] = new JsonArray(check.Needs.Select(n => (JsonNode)new JsonObject { ["name"] = n.Name, ["bytes"] = n.Bytes.Value }).ToArray()),
            ["storage"] = f is null ? null : new JsonObject
            {
                ["mount_point"] = f.MountPoint, ["device"] = f.Device, ["block_device"] = f.BlockDevice, ["model"] = f.DeviceModel,
                ["filesystem"] = f.FileSystem, ["rotational"] = f.Rotational, ["o_direct"] = f.DirectIo, ["total_bytes"] = f.Total.Value,
            },
            ["leftovers"] = new JsonArray(check.Leftovers.Select(l => (JsonNode)Leftover(l)).ToArray()),
            ["problems"] = new JsonArray(check.Problems.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray()),
            ["warnings"] = new JsonArray(check.Warnings.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray()),
            ["fallback"] = decision is null ? null : new JsonObject
            {
                ["fell_back_to_cpu"] = decision.FellBack, ["failed"] = decision.Failed, ["message"] = decision.Message,
            },
        };
    }

    /// <summary>One leftover of a crashed run: what it is, its size, its owner and whether that owner lives.</summary>
    public static JsonObject Leftover(Leftover l)
    {
        ArgumentNullException.ThrowIfNull(l);
        return new JsonObject
        {
            ["path"] = l.Path,
            ["kind"] = KindName(l.Kind),
            ["bytes"] = l.Size.Value,
            ["run_id"] = l.RunId,
            ["pid"] = l.Pid,
            ["state"] = l.State switch { OwnerState.Dead => "stale", OwnerState.Alive => "running", OwnerState.Unknown => "unknown", _ => "not_ours" },
            ["note"] = l.Note,
        };
    }

    /// <summary>A scratch kind as the documents and tables name it.</summary>
    public static string KindName(ScratchKind kind) => kind switch
    {
        ScratchKind.SwapFolder => "swap folder",
        ScratchKind.WriteProbe => "write probe",
        ScratchKind.DirectIoProbe => "O_DIRECT probe",
        _ => "calibration file",
    };
}
