using System.Collections;
using System.Globalization;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// Who this process is in a group started by <see cref="RankLauncher"/>: its rank, the world size, its rank on this host
/// (its GPU index) and the rendezvous folder, read from environment variables named like torchrun's (RANK,
/// WORLD_SIZE, LOCAL_RANK) plus AIOS_RENDEZVOUS.
/// </summary>
/// <param name="Rank">This process's rank.</param>
/// <param name="WorldSize">The number of ranks.</param>
/// <param name="LocalRank">The rank on this host: the GPU to use (cuda:LocalRank).</param>
/// <param name="Rendezvous">The folder every rank of the group was given.</param>
public sealed record RankEnvironment(int Rank, int WorldSize, int LocalRank, string Rendezvous)
{
    public const string RankVariable = "RANK";
    public const string WorldSizeVariable = "WORLD_SIZE";
    public const string LocalRankVariable = "LOCAL_RANK";
    public const string LocalWorldSizeVariable = "LOCAL_WORLD_SIZE";
    public const string RendezvousVariable = "AIOS_RENDEZVOUS";

    /// <summary>The variables the launcher gives this rank's child process.</summary>
    public IReadOnlyDictionary<string, string> ToVariables() => new Dictionary<string, string>
    {
        [RankVariable] = Rank.ToString(CultureInfo.InvariantCulture),
        [WorldSizeVariable] = WorldSize.ToString(CultureInfo.InvariantCulture),
        [LocalRankVariable] = LocalRank.ToString(CultureInfo.InvariantCulture),
        [LocalWorldSizeVariable] = WorldSize.ToString(CultureInfo.InvariantCulture),
        [RendezvousVariable] = Rendezvous,
    };

    /// <summary>The shared-memory options for this rank.</summary>
    public SharedMemoryOptions SharedMemory() => new(Rendezvous, Rank, WorldSize);

    /// <summary>This process's rank environment, or null when it was not started as a rank (no AIOS_RENDEZVOUS).</summary>
    /// <exception cref="InvalidOperationException">A variable is missing or malformed (the message names it).</exception>
    public static RankEnvironment? Current() => From(System.Environment.GetEnvironmentVariables());

    /// <summary>As <see cref="Current"/>, from a given set of variables.</summary>
    public static RankEnvironment? From(IDictionary variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        if (variables[RendezvousVariable] is not string { Length: > 0 } folder) return null;
        int Read(string name)
        {
            string? text = variables[name] as string;
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
                throw new InvalidOperationException($"{RendezvousVariable} is set, so this process is a rank, but {name} is {(text is null ? "missing" : $"'{text}'")}: it must be a whole number (the launcher sets it).");
            return value;
        }
        int rank = Read(RankVariable), world = Read(WorldSizeVariable), local = Read(LocalRankVariable);
        if (world < 1 || rank >= world || local >= world)
            throw new InvalidOperationException($"{RankVariable}={rank}, {LocalRankVariable}={local} and {WorldSizeVariable}={world} do not fit: ranks run from 0 to {WorldSizeVariable}-1.");
        return new RankEnvironment(rank, world, local, folder);
    }
}
