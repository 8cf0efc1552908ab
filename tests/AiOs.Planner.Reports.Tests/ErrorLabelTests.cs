namespace AiOs.Planner.Reports.Tests;

/// <summary>The error labels on the predicted-vs-measured bars: whole percent with the sign, no "-+0%" for a small negative error.</summary>
public class ErrorLabelTests
{
    [Theory]
    [InlineData(0.06, "+6%")]
    [InlineData(-0.124, "-12%")]
    [InlineData(-0.002, "0%")]
    [InlineData(0.004, "0%")]
    [InlineData(-0.005, "-1%")]
    [InlineData(-1.0, "-100%")]
    public void Given_an_error_When_labelled_Then_whole_percent_with_its_sign(double error, string expected) =>
        Assert.Equal(expected, ComparisonFigures.ErrorLabel(error));
}
