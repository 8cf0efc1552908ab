using AiOs.Planner.Engine.Collectives;
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
