using System.Collections.Concurrent;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class ParameterSwapperTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 4 };

    public ParameterSwapperTests() => TorchRuntime.EnsureReady();

    private static ParameterSwapper NvmeSwapper(MemoryStore store, int bufferCount, int depth)
    {
        var swapper = new ParameterSwapper(Spec, StorageTier.Nvme, ScalarType.Float32, CPU, bufferCount, depth, store, new IoCounters(), new SpanTrace(TimeProvider.System));
        float[][] w = InitialWeights.Create(Spec, 9);
        for (int u = 0; u < w.Length; u++) swapper.WriteBack(u, 0, w[u]);
        return swapper;
    }

    [Theory]
    [InlineData(2, 3, 2)]
    [InlineData(5, 1, 2)]
    [InlineData(1, 4, 1)]
    [InlineData(5, 0, 1)]
    public void Given_BufferCountAndDepth_When_APassBegins_Then_ReadsInFlightAreBoundedByBoth(int buffers, int depth, int expected)
    {
        using var swapper = NvmeSwapper(new MemoryStore(), buffers, depth);

        swapper.BeginPass([0, 1, 2, 3]);

        Assert.Equal(expected, swapper.ReadsInFlight);
    }

    [Fact]
    public void Given_APass_When_UnitsAreAcquiredInOrder_Then_EachSlotHoldsThatUnitsStoredValues()
    {
        var store = new MemoryStore();
        using var swapper = NvmeSwapper(store, 2, 1);
        float[][] w = InitialWeights.Create(Spec, 9);

        swapper.BeginPass([Spec.NumLayers, 0, 1, 1, 0]);
        var outer = swapper.Acquire(Spec.NumLayers);
        foreach (int unit in new[] { 0, 1, 1, 0 })
        {
            var layer = swapper.Acquire(unit);
            Assert.Equal(w[unit], ParameterSwapper.ParametersOf(layer).Flat.data<float>().ToArray());
            swapper.Release(unit);
        }
        Assert.Equal(w[Spec.NumLayers], ParameterSwapper.ParametersOf(outer).Flat.data<float>().ToArray());
        swapper.Release(Spec.NumLayers);

        Assert.Equal(["param-u4", "param-u0", "param-u1", "param-u1", "param-u0"], store.Reads);
    }

    [Fact]
    public void Given_APass_When_AUnitIsAcquiredOutOfTheDeclaredOrder_Then_ItIsRefused()
    {
        using var swapper = NvmeSwapper(new MemoryStore(), 2, 1);
        swapper.BeginPass([0, 1]);

        Assert.Throws<InvalidOperationException>(() => swapper.Acquire(1));
    }

    /// <summary>An in-memory swap store that records the order of reads.</summary>
    private sealed class MemoryStore : ISwapStore
    {
        private readonly ConcurrentDictionary<string, byte[]> _objects = new();
        private readonly ConcurrentQueue<string> _reads = new();

        public IReadOnlyList<string> Reads => _reads.ToArray();

        public void Write(string key, long offset, ReadOnlySpan<byte> data)
        {
            byte[] current = _objects.GetOrAdd(key, []);
            if (current.Length < offset + data.Length) Array.Resize(ref current, (int)offset + data.Length);
            data.CopyTo(current.AsSpan((int)offset));
            _objects[key] = current;
        }

        public void Read(string key, long offset, Span<byte> destination)
        {
            _reads.Enqueue(key);
            _objects[key].AsSpan((int)offset, destination.Length).CopyTo(destination);
        }

        public void Dispose() { }
    }
}
