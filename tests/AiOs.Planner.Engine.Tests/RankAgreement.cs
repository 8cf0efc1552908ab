namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// How closely weights trained on several ranks must follow one rank's with the same global batch. The ranks average
/// gradients summed in another order, and Adam divides each moment by the square root of the other, so where a gradient
/// is tiny a rounding difference of the last bit moves that weight by a visible fraction of the learning rate: on the
/// Intel CI VM (AVX-512, 2026-12-06) one of tiny-gpt's 49,984 outer-block weights came out 1.09e-5 away after four steps,
/// on the AMD one none did. A rank whose gradients were lost or counted twice moves thousands of weights by a sizeable
/// fraction of the learning rate (3e-3 in these tests), so the check stays sharp: every weight within 1e-4, and no more
/// than one in a thousand beyond 1e-5.
/// </summary>
internal static class RankAgreement
{
    public const float MaxDifference = 1e-4f;
    public const float TypicalDifference = 1e-5f;
    public const double MaxFractionBeyondTypical = 1e-3;

    /// <summary>Fails naming <paramref name="label"/>, the largest difference and the count beyond the typical one.</summary>
    public static void AssertClose(float[] expected, float[] actual, string label)
    {
        Xunit.Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        int beyond = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= max)) max = d; // NaN counts as the largest
            if (!(d <= TypicalDifference)) beyond++;
        }
        Xunit.Assert.True(max < MaxDifference && beyond <= MaxFractionBeyondTypical * expected.Length,
            $"{label}: largest difference {max:G3}, {beyond} of {expected.Length} weights beyond {TypicalDifference:G1}");
    }
}
