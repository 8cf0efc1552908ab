using System.Text.Json;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Records;

/// <summary>
/// <c>settings.json</c>: what the run was asked to do, written first. <see cref="Settings"/> is the whole
/// <see cref="TrainingSettings"/>, so a settings field added later appears without a change here.
/// </summary>
public sealed record RunSettingsRecord
{
    /// <summary>The run-record schema of the folder (<see cref="RecordSchema.Current"/> when written now; 0 in a folder older than the field).</summary>
    public int Schema { get; init; }
    /// <summary>The run's id (its folder's name); null in a hand-made folder.</summary>
    public string? RunId { get; init; }
    /// <summary>The model trained.</summary>
    public required ModelSpec Model { get; init; }
    /// <summary>The offload and batch settings.</summary>
    public required TrainingSettings Settings { get; init; }
    /// <summary>The engine's own options (seed, device, optimizer, …), as the engine wrote them: Core does not know the engine's types.</summary>
    public JsonElement? Engine { get; init; }
    /// <summary>The text trained on (full path).</summary>
    public string? Dataset { get; init; }
    /// <summary>How the text became tokens (<c>bytes</c> or <c>gpt2</c>).</summary>
    public string? Tokenization { get; init; }
    /// <summary>Optimizer steps requested (counted from the start of the original run when resumed).</summary>
    public int Steps { get; init; }
    /// <summary>The checkpoint the run continued from; null for a fresh run.</summary>
    public string? ResumedFrom { get; init; }
}
