using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The plan (aios executor) and the engine agree on buffer_size, whatever the value (issue 14 item 4).</summary>
public sealed class SwapBufferAgreementTests
{
    [Theory]
    [InlineData("llama-3-8b", OffloadTier.Cpu)]
    [InlineData("llama-3-8b", OffloadTier.Nvme)]
    [InlineData("gpt2-xl", OffloadTier.Cpu)]
    [InlineData("tiny-llama", OffloadTier.Nvme)]
    public void Given_buffer_sizes_around_the_largest_unit_When_planned_and_checked_Then_both_refuse_the_same_ones(string name, OffloadTier tier)
    {
        var model = ModelCatalog.Default.Load(name);
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        long largest = Memory.SwapBufferRule.LargestSwapped(model, ExecutorKind.Aios);
        foreach (long size in new[] { 1_000_000, 100_000_000, largest - 1, largest, largest + 1, Memory.SwapBufferRule.Default(model, ExecutorKind.Aios) })
        {
            var s = new TrainingSettings
            {
                ZeroStage = ZeroStage.Zero3, ParamOffload = tier, OptimizerOffload = OffloadTier.Cpu, NvmePath = "/x",
                BufferSize = Math.Max(1, size), SeqLen = 128, MicroBatch = 1,
            };
            bool planRefuses = SettingsRules.Check(s, model, h200).Any(p => p.Flag == "--buffer-size");
            bool engineRefuses;
            try
            {
                EngineSettings.Check(model, s, new EngineOptions(), hostAvailable: Units.Bytes.FromGiB(1e6));
                engineRefuses = false;
            }
            catch (ArgumentException e)
            {
                engineRefuses = e.Message.Contains("buffer_size", StringComparison.Ordinal);
            }
            Assert.True(planRefuses == engineRefuses, $"{name} {tier} buffer_size {size}: plan refuses {planRefuses}, engine refuses {engineRefuses}");
            Assert.Equal(size < largest, planRefuses);
        }
    }
}
