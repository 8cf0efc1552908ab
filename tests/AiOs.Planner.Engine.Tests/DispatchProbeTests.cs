using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class DispatchProbeTests
{
    private static readonly string[] OperationRows = ["op", "op_scoped", "op_in_place", "view", "op_autograd", "backward_node", "backward_call"];
    private static readonly string[] LayerRows =
        ["layer_op_norm", "layer_op_linear", "layer_op_attention", "layer_op_reseed", "layer_forward", "layer_forward_autograd", "layer_backward"];

    [Fact]
    public void Every_row_is_timed_and_the_layer_rows_follow_the_operation_rows()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt"); // no dropout: no dropout row
        Assert.Equal(0, spec.Dropout);
        var m = DispatchProbe.Measure(new DispatchProbeOptions
        {
            // Two samples and a chain of two: each backward sample consumes the graphs the last one's rebuild made.
            Device = "cpu", Precision = Precision.Fp32, Calls = 30, Repeats = 2, Layer = spec, LayerShape = (1, 8), LayerChain = 2,
        });

        Assert.Equal([.. OperationRows, .. LayerRows], m.Costs.Select(c => c.Name));
        Assert.All(m.Costs, c => Assert.True(c.HostMicroseconds > 0 && double.IsFinite(c.HostMicroseconds), $"{c.Name}: {c.HostMicroseconds}"));
        Assert.Contains("tiny-gpt", m.Layer);
    }

    [Fact]
    public void Without_a_layer_only_the_operation_rows_are_timed()
    {
        var m = DispatchProbe.Measure(new DispatchProbeOptions { Device = "cpu", Precision = Precision.Fp32, Calls = 10, Repeats = 1 });
        Assert.Equal(OperationRows, m.Costs.Select(c => c.Name));
        Assert.Null(m.Layer);
    }

    [Fact]
    public void A_model_with_dropout_gets_its_dropout_row()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt") with { Dropout = 0.1 };
        var m = DispatchProbe.Measure(new DispatchProbeOptions { Device = "cpu", Precision = Precision.Fp32, Calls = 10, Repeats = 1, Layer = spec, LayerChain = 1 });
        Assert.Contains(m.Costs, c => c.Name == "layer_op_dropout" && c.What.Contains("0.1"));
        Assert.Contains("with its dropout", m.Costs.Single(c => c.Name == "layer_op_attention").What);
    }

    [Fact]
    public void Zero_calls_are_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => DispatchProbe.Measure(new DispatchProbeOptions { Device = "cpu", Calls = 0 }));
        Assert.Contains("Calls 0", e.Message);
    }
}

public sealed class CudaGraphCaptureTests
{
    [Fact]
    public void Without_cuda_libtorch_a_graph_is_refused_with_what_it_needs()
    {
        if (System.Runtime.InteropServices.NativeLibrary.TryLoad("libtorch_cuda.so", out _)) return; // a GPU host: nothing to refuse
        var e = Assert.Throws<NotSupportedException>(() => new AiOs.Planner.Engine.Native.CudaGraphCapture());
        Assert.Contains("libtorch_cuda.so", e.Message);
        Assert.Contains("LD_LIBRARY_PATH", e.Message);
    }
}
