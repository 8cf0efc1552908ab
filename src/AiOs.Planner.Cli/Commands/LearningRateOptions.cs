using System.CommandLine;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// --lr, --lr-schedule, --warmup-steps and --min-lr, shared by <c>train</c>, <c>ds-config</c> and <c>tune</c> so a run and the
/// DeepSpeed config written for it use the same rates.
/// </summary>
internal sealed class LearningRateOptions
{
    /// <summary>The default warm-up is this fraction of the run's steps...</summary>
    private const int DefaultWarmupDivisor = 10;
    /// <summary>...and at most this many steps.</summary>
    private const int DefaultWarmupCap = 1000;

    public Option<double> Rate { get; } = new("--lr")
    {
        Description = "AdamW base (peak) learning rate, reached after the warm-up",
        DefaultValueFactory = _ => LearningRateSchedule.DefaultLearningRate,
    };
    public Option<LearningRateDecay> Schedule { get; } = new("--lr-schedule")
    {
        Description = "After the warm-up: constant | linear (to --min-lr at the last step) | cosine (likewise); DeepSpeed's WarmupLR, WarmupDecayLR, WarmupCosineLR",
        DefaultValueFactory = _ => LearningRateDecay.Constant,
        CustomParser = SettingsOptions.ParseEnum<LearningRateDecay>,
    };
    public Option<int?> Warmup { get; } = new("--warmup-steps")
    {
        Description = $"Steps of linear warm-up from --min-lr to --lr (default: a tenth of --steps, at most {DefaultWarmupCap}; 0: none)",
    };
    public Option<double> Min { get; } = new("--min-lr")
    {
        Description = "Where the warm-up starts and linear or cosine decay ends",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { Rate, Schedule, Warmup, Min }) command.Options.Add(o);
    }

    /// <summary>The schedule of a run of <paramref name="totalSteps"/> updates; bad values throw naming the flag.</summary>
    /// <exception cref="DescriptionException">A value cannot make a schedule.</exception>
    public LearningRateSchedule Build(ParseResult r, int totalSteps)
    {
        var schedule = new LearningRateSchedule
        {
            BaseLearningRate = r.GetValue(Rate),
            MinLearningRate = r.GetValue(Min),
            WarmupSteps = r.GetValue(Warmup) ?? DefaultWarmup(totalSteps),
            Decay = r.GetValue(Schedule),
            TotalSteps = totalSteps,
        };
        var problems = schedule.Problems();
        if (problems.Count > 0) throw new DescriptionException(string.Join("; ", problems) + ".");
        return schedule;
    }

    /// <summary>A tenth of the run, at most 1000 steps: short runs warm up briefly, long ones as large-model recipes do.</summary>
    public static int DefaultWarmup(int totalSteps) => Math.Clamp(totalSteps / DefaultWarmupDivisor, 0, DefaultWarmupCap);
}
