namespace AiOs.Planner.Engine.Model;

/// <summary>
/// A small counter-based random generator (SplitMix64) whose stream is fixed by its seed on every
/// platform and .NET version, unlike <see cref="Random"/>'s unspecified algorithm.
/// </summary>
public struct SplitMix64
{
    private ulong _state;

    /// <summary>Starts a stream at <paramref name="seed"/>.</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>
    /// The generator <paramref name="draws"/> calls of <see cref="Next"/> after one started at <paramref name="seed"/>: the
    /// state only counts, so a stream can be cut into pieces made in parallel that equal the sequential stream bit for bit.
    /// </summary>
    public static SplitMix64 After(ulong seed, long draws) => new(unchecked(seed + (ulong)draws * 0x9E3779B97F4A7C15UL));

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="bound"/>).</summary>
    public long NextLong(long bound) => (long)(Next() % (ulong)bound);

    /// <summary>Standard normal (Box–Muller; one of the pair is discarded to keep the stream simple).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>A stream derived from a seed and a tuple of counters, independent of call order.</summary>
    public static SplitMix64 For(long seed, params ReadOnlySpan<long> counters)
    {
        var g = new SplitMix64(unchecked((ulong)seed));
        ulong mixed = g.Next();
        foreach (long c in counters)
        {
            var h = new SplitMix64(mixed ^ unchecked((ulong)c * 0xD1B54A32D192ED03UL));
            mixed = h.Next();
        }
        return new SplitMix64(mixed);
    }
}
