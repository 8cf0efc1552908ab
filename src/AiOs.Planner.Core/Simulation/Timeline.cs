using System.Text;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Memory;

namespace AiOs.Planner.Simulation;

/// <summary>
/// Writes a step's timeline as JSON lines: one <c>{"type":"span", …}</c> line per operation (resource,
/// operation, layer, micro-batch, phase, <c>start_ns</c> and <c>end_ns</c> from the step's start, bytes) and
/// one <c>{"type":"memory", …}</c> line per change of a tier's level (<c>time_ns</c>, bytes). The engine's
/// <c>trace.jsonl</c> uses the same names for its measured spans.
/// </summary>
public static class Timeline
{
    public static void Write(string path, StepResult step, bool hasGpu)
    {
        if (step.Spans is null) throw new ArgumentException("The step was simulated without keeping its timeline.", nameof(step));
        var text = new StringBuilder();
        foreach (var s in step.Spans.OrderBy(s => s.StartNs).ThenBy(s => s.OpId))
        {
            text.Append(JsonSerializer.Serialize(new SpanLine("span", ResourceNames.Of(s.Resource, hasGpu), Name(s.Kind), s.Layer, s.MicroBatch,
                s.Phase.ToString().ToLowerInvariant(), s.StartNs, s.EndNs, s.Bytes, s.OpId), LineOptions)).Append('\n');
        }
        foreach (var (tier, levels) in step.MemoryTimeline ?? new Dictionary<MemoryTier, IReadOnlyList<(long, long)>>())
            foreach (var (time, bytes) in levels)
                text.Append(JsonSerializer.Serialize(new MemoryLine("memory", TierName(tier), time, bytes), LineOptions)).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>snake_case operation names, e.g. <c>param_read</c>.</summary>
    public static string Name(Program.OpKind kind) => JsonNamingPolicy.SnakeCaseLower.ConvertName(kind.ToString());

    public static string TierName(MemoryTier tier) => JsonNamingPolicy.SnakeCaseLower.ConvertName(tier.ToString());

    private static readonly JsonSerializerOptions LineOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed record SpanLine(string Type, string Resource, string Operation, int Layer, int MicroBatch, string Phase, long StartNs, long EndNs, long Bytes, int Id);

    private sealed record MemoryLine(string Type, string Tier, long TimeNs, long Bytes);
}
