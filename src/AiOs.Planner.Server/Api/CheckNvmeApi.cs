using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Memory;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Storage;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// <c>aios check-nvme PATH --json</c> for a folder inside the server's NVMe roots (<c>--nvme-root</c>); with a model
/// and hardware (and settings) it sizes the swap files as the CLI does with <c>--model</c> and <c>--hardware</c>.
/// </summary>
internal static class CheckNvmeApi
{
    /// <summary>The check's document; the folder is created when missing, as the CLI does.</summary>
    public static string Check(JsonObject body, PlannerApi api, PathRoots roots)
    {
        string path = ApiInputs.Value<string?>(body, "path", null) ?? throw new Descriptions.DescriptionException("\"path\" is missing: give the folder to check.");
        string folder = roots.Inside(path, "path");
        PlanResult? plan = null;
        if (body["model"] is not null || body["hardware"] is not null)
        {
            var model = ApiInputs.Model(body);
            var hardware = ApiInputs.Hardware(body);
            var settings = api.Settings(body, model).Settings;
            if (settings.NvmePath is null) settings = settings with { NvmePath = folder };
            if (!settings.UsesNvme)
                settings = settings with { ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, ZeroStage = ZeroStage.Infinity };
            plan = TrainingPlanner.Plan(model, hardware, settings);
        }
        var check = NvmeCheck.Check(folder, plan?.Memory.Nvme.Items ?? []);
        var decision = plan is null ? null : OffloadFallback.Decide(plan.Model, plan.Hardware, plan.Settings, check, allowFallback: !ApiInputs.Value(body, "no_fallback", false));
        return DeepSpeedConfig.ToJson(Json(check, decision));
    }

    private static JsonObject Json(NvmeCheckResult check, FallbackDecision? decision)
    {
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

    private static JsonObject Leftover(Leftover l) => new()
    {
        ["path"] = l.Path,
        ["kind"] = l.Kind switch { ScratchKind.SwapFolder => "swap folder", ScratchKind.WriteProbe => "write probe", ScratchKind.DirectIoProbe => "O_DIRECT probe", _ => "calibration file" },
        ["bytes"] = l.Size.Value,
        ["run_id"] = l.RunId,
        ["pid"] = l.Pid,
        ["state"] = l.State switch { OwnerState.Dead => "stale", OwnerState.Alive => "running", OwnerState.Unknown => "unknown", _ => "not_ours" },
        ["note"] = l.Note,
    };
}
