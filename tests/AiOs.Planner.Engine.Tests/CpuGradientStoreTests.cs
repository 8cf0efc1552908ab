using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The CPU gradient store in bf16 (bf16 training at accumulation 1): what the optimizer reads from it, and each unit's
/// Σg², are the fp32 store's to the bit, on CPU tensors (the GPU copy-stream path moves the same packed bf16 tensor).
/// </summary>
public sealed class CpuGradientStoreTests
{
    private static readonly ParameterLayout Layout = ParameterLayout.ForLayer(ModelCatalog.Default.Load("tiny-gpt"));

    public CpuGradientStoreTests() => TorchRuntime.EnsureReady();

    /// <summary>bf16 parameters on the CPU with seeded bf16 gradients (zeros, signs, tiny and large magnitudes; the first parameter has none).</summary>
    private static FlatParameters WithGradients(int seed, ScalarType dtype = ScalarType.BFloat16)
    {
        var p = new FlatParameters(Layout, dtype, CPU);
        var random = new Random(seed);
        foreach (var (i, (_, parameter)) in p.Named().Index())
        {
            if (i == 0) continue;
            var values = new float[parameter.numel()];
            for (int k = 0; k < values.Length; k++)
                values[k] = k % 17 == 0 ? 0f : (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-30, 4)));
            parameter.grad = tensor(values).reshape(parameter.shape).to(dtype).DetachFromDisposeScope();
        }
        return p;
    }

    private static IEnumerable<SubGroup> SubGroups(long elements, int size)
    {
        for (long offset = 0, i = 0; offset < elements; offset += size, i++)
            yield return new SubGroup(0, (int)i, offset, (int)Math.Min(size, elements - offset));
    }

    private static CpuGradientStore Store(bool bf16) => new([Layout.Elements], new SpanTrace(TimeProvider.System), bf16: bf16);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_bf16_gradients_When_a_bf16_store_takes_them_Then_every_sub_group_and_the_norm_equal_the_fp32_stores_bit_for_bit(bool accumulate)
    {
        using FlatParameters a = WithGradients(7), b = WithGradients(7);
        using CpuGradientStore fp32 = Store(bf16: false), bf16 = Store(bf16: true);

        // Accumulate: the reference trainer's one call; Download: the step program's GradDownload.
        if (accumulate) { fp32.Accumulate(0, a, first: true, last: true); bf16.Accumulate(0, b, first: true, last: true); }
        else { fp32.Download(0, a, first: true, last: true); bf16.Download(0, b, first: true, last: true); }

        Assert.True(bf16.HoldsBf16);
        Assert.Equal(BitConverter.DoubleToInt64Bits(fp32.SumOfSquares[0]), BitConverter.DoubleToInt64Bits(bf16.SumOfSquares[0]));
        Assert.True(fp32.SumOfSquares[0] > 0);
        var scratch = new float[1000];
        var wide = new float[1000];
        foreach (SubGroup g in SubGroups(Layout.Elements, 777))
        {
            Assert.True(MemoryMarshal.Cast<float, int>(fp32.Get(g, wide)).SequenceEqual(MemoryMarshal.Cast<float, int>(bf16.Get(g, scratch))), $"sub-group {g}");
        }
        Assert.All(b.Named(), p => Assert.Null(p.Parameter.grad));
        Assert.Equal(fp32.HostBytes(0), 2 * bf16.HostBytes(0));
    }

    [Fact]
    public void Given_a_bf16_store_When_asked_for_download_bytes_and_scratch_Then_it_moves_two_bytes_per_element_and_offers_no_fp32_scratch()
    {
        using FlatParameters p = WithGradients(1);
        using CpuGradientStore fp32 = Store(bf16: false), bf16 = Store(bf16: true);

        Assert.Equal(2 * Layout.Elements, bf16.DownloadBytes(p, first: true));
        Assert.True(bf16.Scratch(0).IsEmpty);
        Assert.Equal(Layout.Elements, fp32.Scratch(0).Length);
    }

    [Fact]
    public void Given_a_bf16_store_When_a_second_micro_batch_arrives_Then_it_refuses_to_sum_it()
    {
        using FlatParameters first = WithGradients(1), second = WithGradients(2);
        using CpuGradientStore bf16 = Store(bf16: true);
        bf16.Download(0, first, first: true, last: false);

        var e = Assert.Throws<InvalidOperationException>(() => bf16.Download(0, second, first: false, last: true));

        Assert.Contains("gradient accumulation needs the fp32 store", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_bf16_store_When_fp32_gradients_arrive_Then_it_refuses_to_narrow_them()
    {
        using FlatParameters p = WithGradients(1, ScalarType.Float32);
        using CpuGradientStore bf16 = Store(bf16: true);

        var e = Assert.Throws<InvalidOperationException>(() => bf16.Download(0, p, first: true, last: true));

        Assert.Contains("takes bf16 gradients, not Float32", e.Message, StringComparison.Ordinal);
    }
    [Fact]
    public void Given_a_later_micro_batch_of_one_process_When_downloaded_Then_its_accumulate_finishes_it_as_the_download_of_several_ranks_does()
    {
        using FlatParameters a0 = WithGradients(3), a1 = WithGradients(4), b0 = WithGradients(3), b1 = WithGradients(4);
        using CpuGradientStore apart = new([Layout.Elements], new SpanTrace(TimeProvider.System), addsApart: true);
        using CpuGradientStore inside = Store(bf16: false);

        apart.Download(0, a0, first: true, last: false);
        apart.Download(0, a1, first: false, last: true);
        inside.Download(0, b0, first: true, last: false);
        inside.Download(0, b1, first: false, last: true);

        // The norm of the last micro-batch is the accumulate's to take; the sums and the norm then match to the bit.
        Assert.Equal(0, apart.SumOfSquares[0]);
        apart.AddQueued(0);
        Assert.True(inside.SumOfSquares[0] > 0);
        Assert.Equal(BitConverter.DoubleToInt64Bits(inside.SumOfSquares[0]), BitConverter.DoubleToInt64Bits(apart.SumOfSquares[0]));
        var x = new float[1000];
        var y = new float[1000];
        foreach (SubGroup g in SubGroups(Layout.Elements, 777))
            Assert.True(MemoryMarshal.Cast<float, int>(inside.Get(g, x)).SequenceEqual(MemoryMarshal.Cast<float, int>(apart.Get(g, y))), $"sub-group {g}");
    }

    [Fact]
    public void Given_accumulates_out_of_program_order_When_called_Then_the_store_refuses_naming_the_unit()
    {
        using FlatParameters a = WithGradients(3), b = WithGradients(4), c = WithGradients(5), d = WithGradients(6), e = WithGradients(7);
        using CpuGradientStore store = new([Layout.Elements, Layout.Elements], new SpanTrace(TimeProvider.System), addsApart: true);
        int buffers = ProgramShape.Engine.GradientStagingBuffers;
        Assert.Equal(2, buffers);
        store.Download(0, a, first: true, last: false);
        store.Download(1, c, first: true, last: false);

        store.Download(0, b, first: false, last: true);

        // The adds come in their downloads' order; as many downloads as staging buffers may wait for theirs, and no more.
        Assert.Contains("unit 1", Assert.Throws<InvalidOperationException>(() => store.AddQueued(1)).Message);
        store.Download(1, d, first: false, last: true);
        Assert.Contains("Unit 0", Assert.Throws<InvalidOperationException>(() => store.Download(0, e, first: false, last: true)).Message);
        store.AddQueued(0);
        store.AddQueued(1);
        Assert.Throws<InvalidOperationException>(() => store.AddQueued(1));
        Assert.True(store.SumOfSquares[0] > 0 && store.SumOfSquares[1] > 0);
    }
}
