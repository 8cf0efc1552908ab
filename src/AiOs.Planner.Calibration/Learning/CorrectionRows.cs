using AiOs.Planner.Learning;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace AiOs.Planner.Calibration.Learning;

/// <summary>One training row of a phase's regression: the run's features and ln(measured ÷ predicted).</summary>
internal sealed class CorrectionRow
{
    /// <summary>Length of <see cref="CorrectionFeatures.Names"/>; ML.NET's schema needs it as a constant.</summary>
    public const int FeatureCount = 14;

    [VectorType(FeatureCount)]
    public float[] Features { get; set; } = new float[FeatureCount];

    public float Label { get; set; }

    public static CorrectionRow Of(CorrectionFeatures features, double label = 0)
    {
        double[] x = features.ToVector();
        if (x.Length != FeatureCount) throw new InvalidOperationException($"CorrectionFeatures has {x.Length} features; CorrectionRow.FeatureCount says {FeatureCount}.");
        return new CorrectionRow { Features = Array.ConvertAll(x, v => (float)v), Label = (float)label };
    }
}

/// <summary>A regression's output column.</summary>
internal sealed class CorrectionScore
{
    public float Score { get; set; }
}

/// <summary>The regression behind a correction.</summary>
public enum CorrectionTrainerKind
{
    /// <summary>SDCA below 30 runs, FastTree from 30 (where cross-validation on this project's CPU history favoured the trees; see docs/learning.md).</summary>
    Auto,
    /// <summary>A linear model (stochastic dual coordinate ascent) on min-max-normalised features: stable with few runs, extrapolates smoothly.</summary>
    Sdca,
    /// <summary>Gradient-boosted trees: bends where the ratio bends, but needs many runs per leaf.</summary>
    FastTree,
}

/// <summary>Builds the ML.NET pipelines of <see cref="CorrectionTrainerKind"/>.</summary>
internal static class CorrectionPipelines
{
    /// <summary>Runs from which <see cref="CorrectionTrainerKind.Auto"/> picks trees.</summary>
    public const int TreesFrom = 30;

    public static CorrectionTrainerKind Resolve(CorrectionTrainerKind kind, int runs) =>
        kind != CorrectionTrainerKind.Auto ? kind : runs < TreesFrom ? CorrectionTrainerKind.Sdca : CorrectionTrainerKind.FastTree;

    public static IEstimator<ITransformer> Create(MLContext ml, CorrectionTrainerKind kind, int rows) => kind switch
    {
        CorrectionTrainerKind.FastTree => ml.Regression.Trainers.FastTree(numberOfLeaves: 4, numberOfTrees: 100,
            minimumExampleCountPerLeaf: Math.Max(2, rows / 10), learningRate: 0.1),
        // L2 pulls the weights toward a constant log ratio: with a few dozen runs, the mean bias is most of what there is to learn.
        _ => ml.Transforms.NormalizeMinMax("Features")
            .Append(ml.Regression.Trainers.Sdca(l2Regularization: 0.1f, l1Regularization: 0f, maximumNumberOfIterations: 200)),
    };

    public static string Name(CorrectionTrainerKind kind) => kind == CorrectionTrainerKind.FastTree ? "fast_tree" : "sdca";
}
