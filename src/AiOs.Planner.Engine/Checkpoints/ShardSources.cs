using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>Where <see cref="ShardedCheckpoint.Read"/> takes ranges of a unit from: one rank's shard files, or a single-process checkpoint.</summary>
internal interface IShardSource : IDisposable
{
    /// <summary>Saved rank <paramref name="rank"/>'s whole padded shard of <paramref name="unit"/>, as written (same world size only).</summary>
    void ReadSavedShard(int unit, int rank, UnitState into);

    /// <summary>Elements [<paramref name="start"/>, + <paramref name="count"/>) of the unit (padding excluded) into elements [0, <paramref name="count"/>) of <paramref name="into"/>.</summary>
    void Read(int unit, long start, UnitState into, int count);
}

/// <summary>The per-rank files of a sharded checkpoint; each rank's pair is verified and opened the first time one of its ranges is needed.</summary>
internal sealed class ShardFilesSource : IShardSource
{
    private readonly string _folder;
    private readonly CheckpointManifest _manifest;
    private readonly ModelSpec _spec;
    private readonly int _saved;
    private readonly OptimizerStateFormat _format;
    private readonly Dictionary<int, (SafeTensorsFile Model, SafeTensorsFile Optimizer)> _open = [];

    public ShardFilesSource(string folder, CheckpointManifest manifest, ModelSpec spec, int savedWorld, OptimizerStateFormat format)
    {
        if (savedWorld < 1)
            throw new InvalidDataException($"{Path.Combine(folder, Checkpoint.ManifestFile)}: world_size is {savedWorld}; a sharded checkpoint has at least 1 rank.");
        (_folder, _manifest, _spec, _saved, _format) = (folder, manifest, spec, savedWorld, format);
        // Every rank refuses an incomplete folder, even one whose missing file it would not read, so no rank resumes while another cannot.
        IReadOnlyList<string> files = ShardedCheckpoint.DataFilesOf(manifest);
        for (int i = 0; i < files.Count; i++)
            if (!File.Exists(Path.Combine(folder, files[i])))
                throw new InvalidDataException($"Checkpoint '{folder}' is incomplete: {files[i]} (rank {i / 2} of the {savedWorld} that saved it) is missing. " +
                    "Restore that file, or resume from an earlier checkpoint.");
    }

    public void ReadSavedShard(int unit, int rank, UnitState into) => Copy(rank, unit, 0, into, 0, into.Master.Length);

    public void Read(int unit, long start, UnitState into, int count)
    {
        var saved = new ShardLayout(ShardedCheckpoint.ElementsOf(_spec, unit), _saved);
        for (long pos = start, end = start + count; pos < end;)
        {
            int r = (int)(pos / saved.ShardElements);
            (long shardStart, long real) = saved.RangeOf(r);
            long take = Math.Min(end, shardStart + real) - pos;
            Copy(r, unit, pos - shardStart, into, (int)(pos - start), (int)take);
            pos += take;
        }
    }

    /// <summary>Elements [<paramref name="offset"/>, + <paramref name="count"/>) of saved rank <paramref name="rank"/>'s shard of <paramref name="unit"/>, to <paramref name="at"/> in <paramref name="into"/>.</summary>
    private void Copy(int rank, int unit, long offset, UnitState into, int at, int count)
    {
        var (model, optimizer) = Open(rank);
        long length = new ShardLayout(ShardedCheckpoint.ElementsOf(_spec, unit), _saved).ShardElements;
        string name = ShardedCheckpoint.TensorOf(unit);
        if (!model.Tensors.TryGetValue(name, out SafeTensorEntry? master) || master.DType != "F32" || master.Elements != length)
            throw new InvalidDataException($"{model.Path} lacks tensor {name} as F32 of {length} elements (found {master?.DType ?? "none"} {master?.ShapeText ?? ""}); " +
                $"it was not written for model {_spec.Name} with {_saved} ranks.");
        model.ReadFloats(master, offset, into.Master.AsSpan(at, count));
        // The moments of one saved unit shard at most are decoded at a time (8-bit blocks start at the shard's first element).
        var (m, v) = OptimizerStateTensors.Decode(optimizer, name, length, _format)
            ?? throw new InvalidDataException($"{optimizer.Path} lacks the {_format.Name()} moments of {name}; it was not written for model {_spec.Name} with {_saved} ranks.");
        m.AsSpan((int)offset, count).CopyTo(into.ExpAvg.AsSpan(at));
        v.AsSpan((int)offset, count).CopyTo(into.ExpAvgSq.AsSpan(at));
    }

    private (SafeTensorsFile Model, SafeTensorsFile Optimizer) Open(int rank)
    {
        if (_open.TryGetValue(rank, out var files)) return files;
        string modelFile = ShardedCheckpoint.ModelFileOf(rank, _saved), optimizerFile = ShardedCheckpoint.OptimizerFileOf(rank, _saved);
        Checkpoint.Verify(_folder, _manifest, modelFile);
        Checkpoint.Verify(_folder, _manifest, optimizerFile);
        SafeTensorsFile model = SafeTensorsFile.Open(Path.Combine(_folder, modelFile));
        try
        {
            SafeTensorsFile optimizer = SafeTensorsFile.Open(Path.Combine(_folder, optimizerFile));
            _open[rank] = (model, optimizer);
            if (_format == OptimizerStateFormat.EightBit) OptimizerStateTensors.CheckEightBitMetadata(optimizer);
            return (model, optimizer);
        }
        catch when (!_open.ContainsKey(rank))
        {
            model.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var (model, optimizer) in _open.Values)
        {
            model.Dispose();
            optimizer.Dispose();
        }
        _open.Clear();
    }
}

/// <summary>A single-process checkpoint (<see cref="Checkpoint.Save"/>) read range by range, tensor by tensor.</summary>
internal sealed class SingleFilesSource : IShardSource
{
    private readonly ModelSpec _spec;
    private readonly OptimizerStateFormat _format;
    private readonly SafeTensorsFile _model;
    private readonly SafeTensorsFile _optimizer;

    public SingleFilesSource(string folder, CheckpointManifest manifest, ModelSpec spec, OptimizerStateFormat format)
    {
        (_spec, _format) = (spec, format);
        Checkpoint.Verify(folder, manifest, Checkpoint.ModelFile);
        Checkpoint.Verify(folder, manifest, Checkpoint.OptimizerFile);
        _model = SafeTensorsFile.Open(Path.Combine(folder, Checkpoint.ModelFile));
        try
        {
            _optimizer = SafeTensorsFile.Open(Path.Combine(folder, Checkpoint.OptimizerFile));
        }
        catch
        {
            _model.Dispose();
            throw;
        }
        if (format == OptimizerStateFormat.EightBit) OptimizerStateTensors.CheckEightBitMetadata(_optimizer);
    }

    public void ReadSavedShard(int unit, int rank, UnitState into) =>
        throw new InvalidOperationException("A single-process checkpoint has no saved shards; read ranges of it.");

    public void Read(int unit, long start, UnitState into, int count)
    {
        long end = start + count;
        foreach (var (name, slice) in Checkpoint.Names(_spec, unit))
        {
            long lo = Math.Max(start, slice.Offset), hi = Math.Min(end, slice.Offset + slice.Elements);
            if (lo >= hi) continue;
            int at = (int)(lo - start), n = (int)(hi - lo), from = (int)(lo - slice.Offset);
            if (!_model.Tensors.TryGetValue(name, out SafeTensorEntry? master) || master.DType != "F32" || master.Elements != slice.Elements)
                throw new InvalidDataException($"{_model.Path} lacks tensor {name} as F32 of {slice.Elements} elements; it was not written for model {_spec.Name}.");
            _model.ReadFloats(master, from, into.Master.AsSpan(at, n));
            var (m, v) = OptimizerStateTensors.Decode(_optimizer, name, slice.Elements, _format)
                ?? throw new InvalidDataException($"{_optimizer.Path} lacks the {_format.Name()} moments of {name}.");
            m.AsSpan(from, n).CopyTo(into.ExpAvg.AsSpan(at));
            v.AsSpan(from, n).CopyTo(into.ExpAvgSq.AsSpan(at));
        }
    }

    public void Dispose()
    {
        _model.Dispose();
        _optimizer.Dispose();
    }
}

/// <summary>
/// A layer's elements from shard files written before 2026-12-06, in today's order: the files hold each layer's slices
/// in the order before (<see cref="ParameterLayout.ForLayerBefore20261206"/>), so a layer is read whole in that order and each
/// slice is moved to its place by name; the outer block's order did not change and is passed through.
/// </summary>
/// <param name="inner">The checkpoint's files.</param>
/// <param name="spec">The model.</param>
/// <param name="savedWorld">The world size the checkpoint was saved with.</param>
internal sealed class LegacyLayerOrder(IShardSource inner, ModelSpec spec, int savedWorld) : IShardSource
{
    private readonly ParameterLayout _current = ParameterLayout.ForLayer(spec), _legacy = ParameterLayout.ForLayerBefore20261206(spec);
    private (int Unit, UnitState State)? _cached;

    /// <summary>Whether <paramref name="spec"/>'s layer order changed on 2026-12-06 (a joint group with biases).</summary>
    public static bool Differs(ModelSpec spec)
    {
        var current = ParameterLayout.ForLayer(spec);
        var legacy = ParameterLayout.ForLayerBefore20261206(spec);
        return current.Slices.Any(s => legacy.Find(s.Name)!.Offset != s.Offset);
    }

    /// <summary>A layer's shard is its range of the layer in today's order (the padding zeros); the outer block's is as saved.</summary>
    public void ReadSavedShard(int unit, int rank, UnitState into)
    {
        if (unit >= spec.NumLayers)
        {
            inner.ReadSavedShard(unit, rank, into);
            return;
        }
        (long start, long real) = new ShardLayout(_current.Elements, savedWorld).RangeOf(rank);
        foreach (float[] values in new[] { into.Master, into.ExpAvg, into.ExpAvgSq }) Array.Clear(values);
        if (real > 0) Read(unit, start, into, (int)real);
    }

    public void Read(int unit, long start, UnitState into, int count)
    {
        if (unit >= spec.NumLayers)
        {
            inner.Read(unit, start, into, count);
            return;
        }
        UnitState whole = Whole(unit);
        Array.Copy(whole.Master, start, into.Master, 0, count);
        Array.Copy(whole.ExpAvg, start, into.ExpAvg, 0, count);
        Array.Copy(whole.ExpAvgSq, start, into.ExpAvgSq, 0, count);
    }

    /// <summary>Layer <paramref name="unit"/> whole in today's order (the last one kept: ranks read one unit after another).</summary>
    private UnitState Whole(int unit)
    {
        if (_cached is { } c && c.Unit == unit) return c.State;
        int n = checked((int)_current.Elements);
        var saved = new UnitState(new float[n], new float[n], new float[n]);
        inner.Read(unit, 0, saved, n);
        var state = new UnitState(new float[n], new float[n], new float[n]);
        foreach (ParameterSlice s in _current.Slices)
        {
            long from = _legacy.Find(s.Name)!.Offset;
            Array.Copy(saved.Master, from, state.Master, s.Offset, s.Elements);
            Array.Copy(saved.ExpAvg, from, state.ExpAvg, s.Offset, s.Elements);
            Array.Copy(saved.ExpAvgSq, from, state.ExpAvgSq, s.Offset, s.Elements);
        }
        _cached = (unit, state);
        return state;
    }

    public void Dispose() => inner.Dispose();
}
