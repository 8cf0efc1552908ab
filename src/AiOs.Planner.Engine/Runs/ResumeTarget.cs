namespace AiOs.Planner.Engine.Runs;

/// <summary>What <c>--resume</c> names, resolved: the checkpoint to continue from, and the run folder it belongs to.</summary>
/// <param name="Checkpoint">The checkpoint folder (holds <c>checkpoint.json</c>).</param>
/// <param name="RunId">The id of the run folder under the runs folder that holds the checkpoint; null when it lies elsewhere.</param>
public sealed record ResumeTarget(string Checkpoint, string? RunId)
{
    /// <summary>
    /// Resolves <paramref name="resume"/>: a checkpoint folder, a run folder (its newest checkpoint), or the id of a run under
    /// <paramref name="runsRoot"/>. A value read as an id must be a valid one (<see cref="Runs.RunId"/>), so <c>..</c> never
    /// resolves to the runs folder's parent.
    /// </summary>
    /// <exception cref="ArgumentException">Nothing by that name exists.</exception>
    /// <exception cref="InvalidDataException">The folder holds no checkpoint.</exception>
    public static ResumeTarget Resolve(string runsRoot, string resume)
    {
        ArgumentException.ThrowIfNullOrEmpty(resume);
        string path = resume;
        if (!Directory.Exists(path))
        {
            string byId = Path.Combine(runsRoot, resume);
            if (Runs.RunId.Problem(resume) is null && Directory.Exists(byId)) path = byId;
            else
                throw new ArgumentException($"--resume '{resume}' is neither a checkpoint folder, a run folder, nor the id of a run under '{runsRoot}' " +
                    "(a run id is a plain name of A-Z a-z 0-9 . _ -).");
        }
        string checkpoint = File.Exists(Path.Combine(path, Checkpoints.Checkpoint.ManifestFile)) ? path
            : Checkpoints.Checkpoint.Latest(Path.Combine(path, "checkpoints"))
              ?? throw new InvalidDataException($"--resume '{resume}' is neither a checkpoint nor a run folder with checkpoints (no {Path.Combine(path, "checkpoints", "step-<N>")}).");
        return new ResumeTarget(checkpoint, RunIdOf(runsRoot, checkpoint));
    }

    /// <summary>The run folder name when <paramref name="checkpoint"/> is <c>&lt;runsRoot&gt;/&lt;id&gt;/checkpoints/step-N</c> and the name is a valid id; otherwise null.</summary>
    private static string? RunIdOf(string runsRoot, string checkpoint)
    {
        string full = Path.GetFullPath(checkpoint).TrimEnd('/');
        string? checkpoints = Path.GetDirectoryName(full);
        string? run = checkpoints is null ? null : Path.GetDirectoryName(checkpoints);
        if (run is null || Path.GetFileName(checkpoints) != "checkpoints") return null;
        if (Path.GetDirectoryName(run) != Path.GetFullPath(runsRoot).TrimEnd('/')) return null;
        string id = Path.GetFileName(run);
        return Runs.RunId.Problem(id) is null ? id : null;
    }
}
