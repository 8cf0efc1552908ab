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
        return DeepSpeedConfig.ToJson(NvmeCheckDocument.Of(check, decision));
    }
}
