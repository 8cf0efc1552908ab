using System.Globalization;

namespace AiOs.Planner.Units;

/// <summary>A transfer rate in bytes per second. Profiles give decimal GB/s (10^9 bytes per second), as datasheets do.</summary>
public readonly record struct Bandwidth(double BytesPerSecond) : IComparable<Bandwidth>
{
    public static Bandwidth FromGBps(double gbPerSecond) => new(gbPerSecond * 1e9);

    public double GBps => BytesPerSecond / 1e9;

    /// <summary>Time to move <paramref name="bytes"/> at this rate, rounded up to the next nanosecond.</summary>
    public static SimDuration operator /(Bytes bytes, Bandwidth rate)
    {
        if (bytes.Value == 0) return SimDuration.Zero;
        if (rate.BytesPerSecond <= 0) throw new ArgumentOutOfRangeException(nameof(rate), "A transfer needs a positive bandwidth.");
        return new SimDuration(checked((long)Math.Ceiling(bytes.Value * 1e9 / rate.BytesPerSecond)));
    }

    public static Bandwidth operator *(Bandwidth a, double k) => new(a.BytesPerSecond * k);
    public static Bandwidth operator /(Bandwidth a, double k) => new(a.BytesPerSecond / k);
    public static bool operator <(Bandwidth a, Bandwidth b) => a.BytesPerSecond < b.BytesPerSecond;
    public static bool operator >(Bandwidth a, Bandwidth b) => a.BytesPerSecond > b.BytesPerSecond;
    public static bool operator <=(Bandwidth a, Bandwidth b) => a.BytesPerSecond <= b.BytesPerSecond;
    public static bool operator >=(Bandwidth a, Bandwidth b) => a.BytesPerSecond >= b.BytesPerSecond;

    public static Bandwidth Min(Bandwidth a, Bandwidth b) => a <= b ? a : b;

    public int CompareTo(Bandwidth other) => BytesPerSecond.CompareTo(other.BytesPerSecond);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{GBps:0.##} GB/s");
}

/// <summary>A compute rate in floating-point operations per second.</summary>
public readonly record struct FlopRate(double FlopsPerSecond) : IComparable<FlopRate>
{
    public static FlopRate FromTflops(double tflops) => new(tflops * 1e12);

    public double Tflops => FlopsPerSecond / 1e12;

    /// <summary>Time to perform <paramref name="flops"/> operations at <paramref name="rate"/>.</summary>
    public static SimDuration TimeFor(double flops, FlopRate rate)
    {
        if (flops <= 0) return SimDuration.Zero;
        if (rate.FlopsPerSecond <= 0) throw new ArgumentOutOfRangeException(nameof(rate), "Compute needs a positive rate.");
        return new SimDuration(checked((long)Math.Ceiling(flops * 1e9 / rate.FlopsPerSecond)));
    }

    public static FlopRate operator *(FlopRate a, double k) => new(a.FlopsPerSecond * k);
    public static bool operator <(FlopRate a, FlopRate b) => a.FlopsPerSecond < b.FlopsPerSecond;
    public static bool operator >(FlopRate a, FlopRate b) => a.FlopsPerSecond > b.FlopsPerSecond;
    public static bool operator <=(FlopRate a, FlopRate b) => a.FlopsPerSecond <= b.FlopsPerSecond;
    public static bool operator >=(FlopRate a, FlopRate b) => a.FlopsPerSecond >= b.FlopsPerSecond;

    public int CompareTo(FlopRate other) => FlopsPerSecond.CompareTo(other.FlopsPerSecond);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Tflops:0.#} TFLOP/s");
}
