using System.Collections.Concurrent;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class ParameterSwapperTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 4 };

    public ParameterSwapperTests() => TorchRuntime.EnsureReady();

    private static ParameterSwapper NvmeSwapper(MemoryStore store)
    {
        var swapper = new ParameterSwapper(Spec, StorageTier.Nvme, ScalarType.Float32, CPU, store, new IoCounters(), new SpanTrace(TimeProvider.System));
        float[][] w = InitialWeights.Create(Spec, 9);
        for (int u = 0; u < w.Length; u++) swapper.WriteBack(u, 0, w[u]);
        return swapper;
    }

    private static TrainingSettings OnNvme(int buffers, int depth) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Cpu, NvmePath = "/tmp",
        MicroBatch = 1, SeqLen = 16, BufferCount = buffers, PrefetchDepth = depth, MaxInCpu = 0,
    };

    [Theory]
    [InlineData(2, 3)]
    [InlineData(5, 1)]
    [InlineData(1, 0)]
    public void Given_the_engines_program_When_the_swapper_is_prepared_Then_it_has_the_staging_and_device_slots_the_program_names(int buffers, int depth)
    {
        StepProgram program = EngineProgram.For(Spec, OnNvme(buffers, depth));
        using var swapper = NvmeSwapper(new MemoryStore());

        swapper.Prepare(program);

        var reads = program.Ops.Where(o => o.Kind == OpKind.ParamRead && o.Unit.Kind == UnitKind.Layer).ToList();
        Assert.Equal(buffers, reads.Select(o => o.Slot).Distinct().Count());
        foreach (Operation compute in program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Unit.Kind == UnitKind.Layer))
            Assert.IsType<DecoderLayer>(swapper.ModuleIn(compute.Unit.Number, compute.DeviceSlot));
    }

    [Fact]
    public void Given_the_programs_reads_and_uploads_When_run_in_order_Then_each_device_slot_holds_its_units_stored_values()
    {
        var store = new MemoryStore();
        StepProgram program = EngineProgram.For(Spec, OnNvme(2, 1));
        using var swapper = NvmeSwapper(store);
        swapper.Prepare(program);
        float[][] w = InitialWeights.Create(Spec, 9);

        foreach (Operation op in program.Ops.Where(o => o.Kind is OpKind.ParamRead or OpKind.ParamUpload))
        {
            if (op.Kind == OpKind.ParamRead) swapper.Read(op);
            else
            {
                swapper.Upload(op);
                int unit = swapper.UnitOf(op.Unit);
                Assert.Equal(w[unit], ParameterSwapper.ParametersOf(swapper.ModuleIn(unit, op.DeviceSlot)).Flat.data<float>().ToArray());
            }
        }

        // The outer block, then the layers forward and backward: the order the program reads them in.
        Assert.Equal(["param-u4", "param-u0", "param-u1", "param-u2", "param-u3", "param-u3", "param-u2", "param-u1", "param-u0"], store.Reads);
    }

    [Fact]
    public void Given_max_in_cpu_keeping_the_first_units_When_the_program_runs_Then_they_upload_from_ram_and_only_the_rest_are_read()
    {
        var store = new MemoryStore();
        long outerAndTwoLayers = AiOs.Planner.Memory.EngineMemory.OuterElements(Spec) + 2 * Spec.LayerParameters;
        StepProgram program = EngineProgram.For(Spec, OnNvme(2, 1) with { MaxInCpu = outerAndTwoLayers });
        // Units stored before the placement is known keep their values when moved to RAM.
        using var swapper = NvmeSwapper(store);
        swapper.Prepare(program);
        float[][] w = InitialWeights.Create(Spec, 9);
        int readsAtPrepare = store.Reads.Length;

        foreach (Operation op in program.Ops.Where(o => o.Kind is OpKind.ParamRead or OpKind.ParamUpload))
        {
            if (op.Kind == OpKind.ParamRead) swapper.Read(op);
            else
            {
                swapper.Upload(op);
                int unit = swapper.UnitOf(op.Unit);
                Assert.Equal(w[unit], ParameterSwapper.ParametersOf(swapper.ModuleIn(unit, op.DeviceSlot)).Flat.data<float>().ToArray());
            }
        }

        Assert.Equal([StorageTier.Cpu, StorageTier.Cpu, StorageTier.Nvme, StorageTier.Nvme, StorageTier.Cpu], Enumerable.Range(0, 5).Select(swapper.TierOf));
        Assert.Equal(["param-u2", "param-u3", "param-u3", "param-u2"], store.Reads.Skip(readsAtPrepare));
        // A write-back to a kept unit lands in RAM, not in its swap file.
        float[] updated = w[0].Select(x => x + 1).ToArray();
        int writes = store.Writes;
        swapper.WriteBack(0, 0, updated);
        Assert.Equal(writes, store.Writes);
        Operation upload = program.Ops.First(o => o.Kind == OpKind.ParamUpload && o.Unit == UnitId.Layer(0));
        swapper.Upload(upload);
        Assert.Equal(updated, ParameterSwapper.ParametersOf(swapper.ModuleIn(0, upload.DeviceSlot)).Flat.data<float>().ToArray());
        // A later program must keep the same units in RAM: the host copies hold their only values.
        Assert.Throws<InvalidOperationException>(() => swapper.Prepare(EngineProgram.For(Spec, OnNvme(2, 1))));
    }

    [Fact]
    public void Given_a_program_unit_the_engine_does_not_have_When_mapped_Then_it_is_refused()
    {
        using var swapper = NvmeSwapper(new MemoryStore());

        Assert.Throws<ArgumentException>(() => swapper.UnitOf(UnitId.Model));
    }

    /// <summary>An in-memory swap store that records the order of reads.</summary>
    private sealed class MemoryStore : ISwapStore
    {
        private readonly ConcurrentDictionary<string, byte[]> _objects = new();
        private readonly ConcurrentQueue<string> _reads = new();

        public string[] Reads => _reads.ToArray();

        public int Writes { get; private set; }

        public void Write(string key, long offset, ReadOnlySpan<byte> data)
        {
            Writes++;
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
