using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace AiOs.Planner.Storage;

/// <summary>The tool's scratch files in an offload folder: write probes, O_DIRECT probes, calibration test files.</summary>
public enum ScratchKind
{
    /// <summary><c>aios-&lt;run id&gt;/</c>: one run's swap folder.</summary>
    SwapFolder,
    /// <summary>check-nvme's write probe.</summary>
    WriteProbe,
    /// <summary>The O_DIRECT probe.</summary>
    DirectIoProbe,
    /// <summary>calibrate's (or bench-drive's) test file.</summary>
    CalibrationFile,
}

/// <summary>
/// Names for scratch files: <c>.aios-&lt;kind&gt;-&lt;host tag&gt;-&lt;pid&gt;-&lt;start ticks&gt;-&lt;16 random hex&gt;.tmp</c>.
/// Recognisable (so leftovers can be listed and cleaned, and whose process made them told apart), and unpredictable
/// (so nobody can plant a link at the name beforehand). Names of older versions (pid only) are recognised too.
/// </summary>
public static partial class ScratchNames
{
    private static readonly Dictionary<ScratchKind, string> Words = new()
    {
        [ScratchKind.WriteProbe] = "write-probe",
        [ScratchKind.DirectIoProbe] = "odirect-probe",
        [ScratchKind.CalibrationFile] = "calibrate",
    };

    [GeneratedRegex(@"^\.aios-(write-probe|odirect-probe|calibrate)-([0-9a-f]{8})-(\d+)-(\d+)-[0-9a-f]{16}\.tmp$")]
    private static partial Regex Current();

    // Before 2026-12: ".aios-write-probe-<pid>", ".aios-odirect-probe-<pid>", ".aios-calibrate-<pid>-<guid>.tmp".
    [GeneratedRegex(@"^\.aios-(?:(write-probe|odirect-probe)-(\d+)|(calibrate)-(\d+)-[0-9a-f]{32}\.tmp)$")]
    private static partial Regex Legacy();

    /// <summary>A fresh name for a scratch file of <paramref name="kind"/> made by this process.</summary>
    public static string New(ScratchKind kind)
    {
        var me = ProcessIdentity.Current();
        return string.Create(CultureInfo.InvariantCulture,
            $".aios-{Words[kind]}-{ProcessIdentity.HostTag(me.Host)}-{me.Pid}-{me.StartTicks}-{RandomNumberGenerator.GetHexString(16, lowercase: true)}.tmp");
    }

    /// <summary>What a scratch file name says: its kind, its process's pid, and whether that process still runs; null for other names.</summary>
    public static (ScratchKind Kind, int Pid, OwnerState State)? Parse(string name)
    {
        var m = Current().Match(name);
        if (m.Success)
        {
            var kind = KindOf(m.Groups[1].Value);
            int pid = int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
            long start = long.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
            if (m.Groups[2].Value != ProcessIdentity.HostTag(System.Environment.MachineName)) return (kind, pid, OwnerState.Unknown);
            return (kind, pid, new ProcessIdentity(pid, start, System.Environment.MachineName).State());
        }
        m = Legacy().Match(name);
        if (!m.Success) return null;
        string word = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[3].Value;
        int oldPid = int.Parse(m.Groups[1].Success ? m.Groups[2].Value : m.Groups[4].Value, CultureInfo.InvariantCulture);
        // Without a start time a running process with that pid may be a reused pid: not known, so kept.
        return (KindOf(word), oldPid, ProcessIdentity.CanTell && ProcessIdentity.StartTicksOf(oldPid) is null ? OwnerState.Dead : OwnerState.Unknown);
    }

    private static ScratchKind KindOf(string word) => Words.First(w => w.Value == word).Key;
}
