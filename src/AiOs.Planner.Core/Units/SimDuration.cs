using System.Globalization;

namespace AiOs.Planner.Units;

/// <summary>A span of simulated or measured time in integer nanoseconds (never <see cref="DateTime"/>).</summary>
public readonly record struct SimDuration(long Nanoseconds) : IComparable<SimDuration>
{
    public static SimDuration Zero => default;

    public static SimDuration FromSeconds(double seconds) => new(checked((long)Math.Ceiling(seconds * 1e9)));
    public static SimDuration FromMilliseconds(double ms) => FromSeconds(ms / 1e3);
    public static SimDuration FromMicroseconds(double us) => FromSeconds(us / 1e6);

    public double Seconds => Nanoseconds / 1e9;
    public double Milliseconds => Nanoseconds / 1e6;

    public static SimDuration operator +(SimDuration a, SimDuration b) => new(checked(a.Nanoseconds + b.Nanoseconds));
    public static SimDuration operator -(SimDuration a, SimDuration b) => new(checked(a.Nanoseconds - b.Nanoseconds));
    public static SimDuration operator *(SimDuration a, long k) => new(checked(a.Nanoseconds * k));
    public static bool operator <(SimDuration a, SimDuration b) => a.Nanoseconds < b.Nanoseconds;
    public static bool operator >(SimDuration a, SimDuration b) => a.Nanoseconds > b.Nanoseconds;
    public static bool operator <=(SimDuration a, SimDuration b) => a.Nanoseconds <= b.Nanoseconds;
    public static bool operator >=(SimDuration a, SimDuration b) => a.Nanoseconds >= b.Nanoseconds;

    public static SimDuration Max(SimDuration a, SimDuration b) => a >= b ? a : b;
    public static SimDuration Min(SimDuration a, SimDuration b) => a <= b ? a : b;

    public int CompareTo(SimDuration other) => Nanoseconds.CompareTo(other.Nanoseconds);

    public override string ToString() => Nanoseconds switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{Seconds:0.000} s"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{Milliseconds:0.00} ms"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{Nanoseconds / 1e3:0.0} us"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{Nanoseconds} ns"),
    };
}
