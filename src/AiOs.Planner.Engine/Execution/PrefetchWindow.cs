using System.Collections.Concurrent;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.IO;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Execution;

internal sealed partial class ParameterSwapper
{
    /// <summary>
    /// Reads NVMe-resident units into host staging buffers ahead of use. At most <c>buffer_count</c>
    /// buffers exist, and reads run at most <c>prefetch_depth</c> units past the one being acquired, in the
    /// order the pass declared. Time the compute thread waits for a read is recorded as a <c>stall</c> span.
    /// Staging buffers are 4096-byte aligned native memory, so O_DIRECT reads land in them without a bounce copy.
    /// </summary>
    private sealed class PrefetchWindow : IDisposable
    {
        private readonly ParameterSwapper _owner;
        private readonly int _depth;
        private readonly ConcurrentBag<AlignedBuffer> _free = [];
        private readonly List<AlignedBuffer> _all = [];
        private readonly Dictionary<int, Task<AlignedBuffer>> _reads = [];
        private IReadOnlyList<int> _order = [];
        private readonly AlignedBuffer _outerBuffer;
        private bool _outerFree = true;
        private int _cursor, _issued;

        /// <summary>
        /// <paramref name="bufferCount"/> staging buffers of <paramref name="layerBytes"/> for layers, and one
        /// of <paramref name="outerBytes"/> for the outer block (read once per micro-batch; with a large
        /// vocabulary it is several layers' size, so sizing every buffer to it would waste memory).
        /// </summary>
        public PrefetchWindow(ParameterSwapper owner, int bufferCount, int depth, long layerBytes, long outerBytes)
        {
            _owner = owner;
            _depth = depth;
            for (int i = 0; i < bufferCount; i++) _free.Add(Allocate(layerBytes));
            _outerBuffer = Allocate(outerBytes);
        }

        private AlignedBuffer Allocate(long bytes)
        {
            var buffer = new AlignedBuffer(new Bytes((bytes + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment));
            _all.Add(buffer);
            return buffer;
        }

        /// <summary>Reads issued and not yet taken (each holds a staging buffer).</summary>
        public int InFlight => _reads.Count;

        public void Begin(IReadOnlyList<int> order)
        {
            if (_reads.Count > 0) throw new InvalidOperationException("A pass began while reads of the previous one were outstanding.");
            _order = order;
            _cursor = 0;
            _issued = 0;
            IssueAhead();
        }

        public void TakeInto(int unit, FlatParameters target)
        {
            if (_cursor >= _order.Count || _order[_cursor] != unit)
                throw new InvalidOperationException($"Unit {unit} acquired out of the declared order.");
            if (_issued == _cursor) Issue(blocking: true);
            Task<AlignedBuffer> read = _reads[_cursor];
            if (!read.IsCompleted)
                using (_owner._trace.Stall(OpKind.ParamRead, _owner.ProgramLayer(unit))) read.GetAwaiter().GetResult();
            // GetResult, not Result: a failed read surfaces as its own exception (a checksum mismatch is an
            // InvalidDataException naming the file), not wrapped in an AggregateException the run does not catch.
            AlignedBuffer buffer = read.GetAwaiter().GetResult();
            _reads.Remove(_cursor);
            using (_owner._trace.Begin(ResourceKind.H2d, OpKind.ParamUpload, _owner.ProgramLayer(unit), _owner.UnitBytes(unit)))
                target.LoadBytes(buffer.AsSpan(0, checked((int)_owner.UnitBytes(unit))));
            _owner._io.Upload(_owner.UnitBytes(unit));
            if (ReferenceEquals(buffer, _outerBuffer)) _outerFree = true;
            else _free.Add(buffer);
            _cursor++;
            IssueAhead();
        }

        private void IssueAhead()
        {
            while (_issued < _order.Count && _issued <= _cursor + _depth && Issue(blocking: false)) { }
        }

        private bool Issue(bool blocking)
        {
            int unit = _order[_issued];
            AlignedBuffer? buffer;
            if (unit == _owner._spec.NumLayers)
            {
                buffer = _outerFree ? _outerBuffer : null;
                _outerFree = false;
            }
            else if (!_free.TryTake(out buffer))
            {
                buffer = null;
            }
            if (buffer is null)
            {
                if (!blocking) return false;
                throw new InvalidOperationException("No staging buffer is free; buffer_count must be at least 1.");
            }
            int position = _issued++;
            ParameterSwapper owner = _owner;
            _reads[position] = Task.Run(() =>
            {
                int bytes = checked((int)owner.UnitBytes(unit));
                using (owner._trace.Begin(ResourceKind.Nvme, OpKind.ParamRead, owner.ProgramLayer(unit), bytes))
                    owner._store!.Read(Key(unit), 0, buffer.AsSpan(0, bytes));
                owner._io.Read(StorageTier.Nvme, bytes);
                return buffer;
            });
            return true;
        }

        public void Dispose()
        {
            foreach (Task<AlignedBuffer> t in _reads.Values)
            {
                try { t.Wait(); } catch (AggregateException) { }
            }
            _reads.Clear();
            foreach (AlignedBuffer b in _all) b.Dispose();
        }
    }

    /// <summary>NVMe reads issued ahead and not yet consumed (0 for other tiers).</summary>
    internal int ReadsInFlight => _window?.InFlight ?? 0;
}
