using System.Collections.Concurrent;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

internal sealed partial class ParameterSwapper
{
    /// <summary>
    /// Reads NVMe-resident units into host staging buffers ahead of use. At most <c>buffer_count</c>
    /// buffers exist, and reads run at most <c>prefetch_depth</c> units past the one being acquired, in the
    /// order the pass declared. Time the compute thread waits for a read is recorded as a <c>stall</c> span.
    /// </summary>
    private sealed class PrefetchWindow : IDisposable
    {
        private readonly ParameterSwapper _owner;
        private readonly int _depth;
        private readonly ConcurrentBag<byte[]> _free = [];
        private readonly Dictionary<int, Task<byte[]>> _reads = [];
        private IReadOnlyList<int> _order = [];
        private int _cursor, _issued;

        public PrefetchWindow(ParameterSwapper owner, int bufferCount, int depth, long bufferBytes)
        {
            _owner = owner;
            _depth = depth;
            for (int i = 0; i < bufferCount; i++) _free.Add(new byte[bufferBytes]);
        }

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
            Task<byte[]> read = _reads[_cursor];
            if (!read.IsCompleted)
                using (_owner._trace.Stall(OpKind.ParamRead, _owner.ProgramLayer(unit))) read.Wait();
            byte[] buffer = read.Result;
            _reads.Remove(_cursor);
            using (_owner._trace.Begin(ResourceKind.H2d, OpKind.ParamUpload, _owner.ProgramLayer(unit)))
                target.LoadBytes(buffer.AsSpan(0, checked((int)_owner.UnitBytes(unit))));
            _free.Add(buffer);
            _cursor++;
            IssueAhead();
        }

        private void IssueAhead()
        {
            while (_issued < _order.Count && _issued <= _cursor + _depth && Issue(blocking: false)) { }
        }

        private bool Issue(bool blocking)
        {
            if (!_free.TryTake(out byte[]? buffer))
            {
                if (!blocking) return false;
                throw new InvalidOperationException("No staging buffer is free; buffer_count must be at least 1.");
            }
            int position = _issued++;
            int unit = _order[position];
            ParameterSwapper owner = _owner;
            _reads[position] = Task.Run(() =>
            {
                int bytes = checked((int)owner.UnitBytes(unit));
                using (owner._trace.Begin(ResourceKind.Nvme, OpKind.ParamRead, owner.ProgramLayer(unit)))
                    owner._store!.Read(Key(unit), 0, buffer.AsSpan(0, bytes));
                owner._io.Read(StorageTier.Nvme, bytes);
                return buffer;
            });
            return true;
        }

        public void Dispose()
        {
            foreach (Task<byte[]> t in _reads.Values)
            {
                try { t.Wait(); } catch (AggregateException) { }
            }
            _reads.Clear();
        }
    }
}
