using System.Text.Json.Serialization;

namespace AiOs.Planner.Records;

/// <summary>
/// One timed piece of work, measured (a line of <c>trace.jsonl</c>) or predicted (a span line of <c>predicted-timeline.jsonl</c>): the
/// step-program operation it executes (<see cref="OpId"/>, −1 when unknown), the operation kind in snake_case (or <c>wait_…</c> for a
/// stall), the resource by its timeline name, the phase when known, the layer as the program numbers it (−1 the embedding side, L the
/// head), the micro-batch, start and end in nanoseconds (from the run's start, or from the predicted step's start) and bytes moved.
/// </summary>
public sealed record SpanRecord
{
    /// <summary>The step-program operation id; −1 when the writer did not know it (every run before op ids were traced).</summary>
    public int OpId { get; init; } = -1;
    /// <summary>The optimizer step (0 in a predicted timeline, which is one step).</summary>
    public int Step { get; init; }
    public int MicroBatch { get; init; }
    /// <summary>The resource's timeline name (<c>gpu</c>, <c>pcie_h2d</c>, <c>nvme</c>, <c>stall</c>, …).</summary>
    public required string Resource { get; init; }
    /// <summary>The operation kind in snake_case (<c>param_read</c>, <c>forward</c>, …) or <c>wait_…</c>.</summary>
    public required string Operation { get; init; }
    /// <summary>forward, backward or optimizer; null when the writer did not say (the engine's spans, until they carry it).</summary>
    public string? Phase { get; init; }
    public int Layer { get; init; }
    public long StartNs { get; init; }
    public long EndNs { get; init; }
    public long Bytes { get; init; }

    /// <summary>End − start, nanoseconds.</summary>
    [JsonIgnore]
    public long DurationNs => EndNs - StartNs;

    /// <summary>What a line needs to be a span; null when it has it.</summary>
    internal static string? Missing(SpanRecord s) =>
        s.Resource is null ? "resource" : s.Operation is null ? "operation" : s.EndNs < s.StartNs ? $"end_ns {s.EndNs} before start_ns {s.StartNs}" : null;
}

/// <summary>A memory tier's level at a time of the predicted step.</summary>
/// <param name="Tier">The tier (<c>gpu</c>, <c>cpu_pinned</c>, <c>cpu_pageable</c>, <c>nvme</c>).</param>
/// <param name="TimeNs">From the step's start.</param>
/// <param name="Bytes">Bytes held from then on.</param>
public sealed record MemoryLevel(string Tier, long TimeNs, long Bytes);

/// <summary>
/// One line of <c>predicted-timeline.jsonl</c> (Core's <c>Timeline.Write</c>): a span (<c>type</c> "span" or absent; its operation id
/// is <c>id</c>) or a memory level (<c>type</c> "memory").
/// </summary>
internal sealed record TimelineLine
{
    public string? Type { get; init; }
    public string? Resource { get; init; }
    public string? Operation { get; init; }
    public string? Phase { get; init; }
    public int Layer { get; init; }
    public int MicroBatch { get; init; }
    public long StartNs { get; init; }
    public long EndNs { get; init; }
    public long Bytes { get; init; }
    public int Id { get; init; } = -1;
    public string? Tier { get; init; }
    public long TimeNs { get; init; }

    public bool IsMemory => Type == "memory";

    public string? Missing() => IsMemory ? (Tier is null ? "tier" : null) : Resource is null ? "resource" : Operation is null ? "operation" : null;

    public SpanRecord ToSpan() => new()
    {
        OpId = Id, Resource = Resource!, Operation = Operation!, Phase = Phase, Layer = Layer, MicroBatch = MicroBatch,
        StartNs = StartNs, EndNs = EndNs, Bytes = Bytes,
    };
}
