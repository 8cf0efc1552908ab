using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration;

/// <summary>Writes a profile atomically (temporary file, flush, rename), so an interrupted run never leaves half a profile.</summary>
public static class ProfileWriter
{
    /// <summary>The profile as the JSON text of a profile file.</summary>
    public static string ToJson(HardwareProfile profile) => JsonSerializer.Serialize(profile, DescriptionJson.WriteOptions) + "\n";

    /// <summary>Writes <paramref name="profile"/> to <paramref name="path"/>, replacing any file there only once the new one is complete.</summary>
    public static void WriteFile(string path, HardwareProfile profile) => AtomicFile.WriteAllText(path, ToJson(profile));
}
