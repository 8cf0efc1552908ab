using System.Diagnostics;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>One supervised rank: its child process, its exit time and the tail of its output.</summary>
internal sealed class RankProcess : IDisposable
{
    private readonly System.Diagnostics.Process process;
    private readonly Queue<string> tail = new();
    private readonly Action<int, string>? output;

    private RankProcess(int rank, System.Diagnostics.Process process, Action<int, string>? output)
    {
        Rank = rank;
        this.process = process;
        this.output = output;
    }

    public int Rank { get; }

    public bool Exited => process.HasExited;

    public int ExitCode => process.ExitCode;

    public DateTime ExitTime => process.ExitTime;

    public static RankProcess Start(RankLaunchRequest request, RankEnvironment environment)
    {
        // In a session of its own (setsid) a rank gets only the signals the launcher forwards, once each: a terminal's
        // Ctrl-C or a SIGTERM to the whole group would otherwise reach it twice, and a second signal ends a run at once.
        bool own = request.ForwardSignals && File.Exists(SetSid);
        var info = new ProcessStartInfo(own ? SetSid : request.FileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (own) info.ArgumentList.Add(request.FileName);
        foreach (string a in request.Arguments) info.ArgumentList.Add(a);
        foreach (var (name, value) in environment.ToVariables()) info.Environment[name] = value;
        var process = new System.Diagnostics.Process { StartInfo = info };
        var rank = new RankProcess(environment.Rank, process, request.Output);
        process.OutputDataReceived += (_, e) => rank.Line(e.Data);
        process.ErrorDataReceived += (_, e) => rank.Line(e.Data);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            process.Dispose();
            throw new InvalidOperationException($"Starting rank {environment.Rank} ({request.FileName}) failed: {e.Message}.", e);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return rank;
    }

    /// <summary>The last <paramref name="lines"/> lines the rank wrote (stdout and stderr interleaved as they came).</summary>
    public string Tail(int lines)
    {
        lock (tail) return string.Join('\n', tail.Skip(Math.Max(0, tail.Count - lines)));
    }

    /// <summary>util-linux's setsid, which runs a program in a new session (its own process group).</summary>
    private const string SetSid = "/usr/bin/setsid";

    /// <summary>Sends POSIX signal <paramref name="signal"/> (1 SIGHUP, 2 SIGINT, 15 SIGTERM) to the rank, if it still runs.</summary>
    public void Signal(int signal)
    {
        if (!process.HasExited) _ = SendSignal(process.Id, signal);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    /// <summary>Ends the rank and everything it started.</summary>
    public void Kill()
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
    }

    /// <summary>Waits until the output readers have delivered the last lines (after the process exited).</summary>
    public void WaitForOutput() => process.WaitForExit();

    private void Line(string? line)
    {
        if (line is null) return;
        lock (tail)
        {
            tail.Enqueue(line);
            while (tail.Count > 200) tail.Dequeue();
        }
        output?.Invoke(Rank, line);
    }

    public void Dispose()
    {
        if (!process.HasExited) Kill();
        process.Dispose();
    }
}
