namespace AiOs.Planner.Cli;

/// <summary>Process exit codes, one meaning each, so scripts can tell a typo from a plan that does not fit.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>An unexpected failure inside the tool.</summary>
    public const int Failure = 1;
    /// <summary>Bad flags or input files: fix the command.</summary>
    public const int Usage = 2;
    /// <summary>The command ran, and the answer is "no": the plan does not fit, the folder is unusable.</summary>
    public const int Infeasible = 3;
    /// <summary>Interrupted (Ctrl-C).</summary>
    public const int Interrupted = 130;
}
