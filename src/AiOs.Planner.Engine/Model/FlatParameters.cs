using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// One unit's parameters as a single contiguous tensor, with a leaf <see cref="Parameter"/> per slice
/// that is a view into it. Loading a unit is then one copy into <see cref="Flat"/>, whatever its shape,
/// and the flat buffer is exactly what a swap file or a staging buffer holds.
/// </summary>
public sealed class FlatParameters : IDisposable
{
    private readonly Dictionary<string, Parameter> _views = new(StringComparer.Ordinal);
    /// <summary>The layout's joint views (<see cref="ParameterLayout.Fused"/>) by name, and each member slice's group.</summary>
    private readonly Dictionary<string, Parameter> _fused = new(StringComparer.Ordinal);
    /// <summary>Each member slice's joint view, by its place in <see cref="ParameterLayout.Fused"/>; each slice's place in the layout.</summary>
    private readonly Dictionary<string, int> _groupOf = new(StringComparer.Ordinal), _sliceIndex = new(StringComparer.Ordinal);

    /// <summary>Allocates zeroed parameters for <paramref name="layout"/>.</summary>
    /// <param name="layout">The unit's slices.</param>
    /// <param name="dtype">The training precision.</param>
    /// <param name="device">Where the buffer lives.</param>
    /// <param name="padded">
    /// Elements of the buffer behind <see cref="Flat"/> (at least the layout's): ZeRO-3 gathers a unit's padded shards in
    /// place into <see cref="Gathered"/>, whose tail past the layout is zeros (see <see cref="Collectives.ShardLayout"/>).
    /// </param>
    public FlatParameters(ParameterLayout layout, ScalarType dtype, Device device, long padded = 0)
    {
        Layout = layout;
        _dtype = dtype;
        if (padded != 0 && padded < layout.Elements) throw new ArgumentOutOfRangeException(nameof(padded), padded, $"The padded buffer must hold the layout's {layout.Elements} elements.");
        Gathered = zeros([Math.Max(padded, layout.Elements)], dtype, device).DetachFromDisposeScope();
        Flat = Gathered.numel() == layout.Elements ? Gathered : Gathered.narrow(0, 0, layout.Elements).DetachFromDisposeScope();
        foreach (ParameterSlice s in layout.Slices)
        {
            Tensor view = Flat.narrow(0, s.Offset, s.Elements).view(s.Shape);
            _views[s.Name] = new Parameter(view, requires_grad: true).DetachFromDisposeScope() as Parameter
                ?? throw new InvalidOperationException("Parameter view lost its type.");
        }
        AddFused();
    }

    /// <summary>A leaf <see cref="Parameter"/> over each joint view of the layout: a computation that uses it gives it the members' gradients as one tensor.</summary>
    private void AddFused()
    {
        for (int i = 0; i < Layout.Slices.Count; i++) _sliceIndex[Layout.Slices[i].Name] = i;
        for (int i = 0; i < Layout.Fused.Count; i++)
        {
            FusedSlice f = Layout.Fused[i];
            _fused[f.Name] = new Parameter(Flat.narrow(0, f.Offset, f.Elements).view(f.Shape), requires_grad: true).DetachFromDisposeScope() as Parameter
                ?? throw new InvalidOperationException("Parameter view lost its type.");
            foreach (string member in f.Members) _groupOf[member] = i;
        }
    }

    /// <summary>Parameters over an existing buffer (not copied; disposed with them).</summary>
    private FlatParameters(ParameterLayout layout, Tensor storage)
    {
        Layout = layout;
        _dtype = storage.dtype;
        Gathered = Flat = storage;
        foreach (ParameterSlice s in layout.Slices)
            _views[s.Name] = new Parameter(storage.narrow(0, s.Offset, s.Elements).view(s.Shape), requires_grad: true).DetachFromDisposeScope() as Parameter
                ?? throw new InvalidOperationException("Parameter view lost its type.");
        AddFused();
    }

    /// <summary>
    /// One flat parameter whose gradient is <paramref name="gradient"/> (a 1-D tensor, owned from now on): the carrier that
    /// hands a ZeRO-3 rank's reduced gradient shard to the gradient stores, which take gradients from parameters.
    /// </summary>
    public static FlatParameters CarryingGradient(Tensor gradient)
    {
        var carrier = new FlatParameters(ParameterLayout.Single("shard", gradient.numel()), gradient);
        carrier._views["shard"].grad = gradient;
        return carrier;
    }

    /// <summary>The layout the buffer follows.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>The flat buffer (no autograd history; write it under <c>no_grad</c>).</summary>
    public Tensor Flat { get; }

    /// <summary><see cref="Flat"/> with its zero padding: the buffer an all-gather of the unit's shards fills (the same tensor when unpadded).</summary>
    public Tensor Gathered { get; }

    /// <summary>Bytes of the flat buffer in its element type.</summary>
    public long ByteLength => Layout.Elements * Flat.element_size();

    /// <summary>The parameter named <paramref name="name"/>.</summary>
    public Parameter this[string name] => _views[name];

    /// <summary>The parameter named <paramref name="name"/>, or null when the layout has none (an absent bias).</summary>
    public Parameter? Optional(string name) => _views.GetValueOrDefault(name);

    /// <summary>The joint view named <paramref name="name"/> (<see cref="ParameterLayout.Fused"/>, for example <c>attn.qkv.weight</c>), or null when the layout has none.</summary>
    public Parameter? Fused(string name) => _fused.GetValueOrDefault(name);

    /// <summary>The gradient of the parameter named <paramref name="name"/> (through its joint view where the computation used that), or null.</summary>
    public Tensor? Gradient(string name) =>
        GradientOf(_sliceIndex.TryGetValue(name, out int k) ? k : throw new ArgumentException($"The unit has no parameter '{name}'.", nameof(name)));

    /// <summary>
    /// The gradient of slice <paramref name="k"/>: its own parameter's, or its place in its joint view's gradient when the
    /// computation used the joint view (added to its own when it has both); null when it has neither.
    /// </summary>
    private Tensor? GradientOf(int k)
    {
        ParameterSlice s = Layout.Slices[k];
        Tensor? own = OwnGradient(k);
        if (!_groupOf.TryGetValue(s.Name, out int fi) || JointGradient(fi) is not { } joint) return own;
        FusedSlice f = Layout.Fused[fi];
        // reshape, not view: autograd's results need not be contiguous (a grad field was laid out like its parameter).
        Tensor part = joint.reshape(-1).narrow(0, s.Offset - f.Offset, s.Elements).view(s.Shape);
        // A computation that used both the member and the joint view gave each its share.
        return own is null ? part : own + part;
    }

    /// <summary>Slice k's own gradient: from <see cref="Backward"/>'s list while it holds one, else the parameter's <c>grad</c>.</summary>
    private Tensor? OwnGradient(int k) => _pending is { } g ? Defined(g[k]) : _views[Layout.Slices[k].Name].grad;

    /// <summary>Joint view f's gradient, as <see cref="OwnGradient"/>.</summary>
    private Tensor? JointGradient(int f) => _pending is { } g ? Defined(g[Layout.Slices.Count + f]) : _fused[Layout.Fused[f].Name].grad;

    /// <summary>An autograd result, or null for a leaf the computation did not use (an undefined tensor).</summary>
    private static Tensor? Defined(Tensor g) => g.IsInvalid ? null : g;

    /// <summary>
    /// Drops every parameter's and joint view's gradient: <see cref="Backward"/>'s list, or the parameters' <c>grad</c>. Not both:
    /// clearing the fields is a native call per parameter, and while a list is held they were not set (a unit is back-propagated
    /// one way or the other; a <c>backward</c> through its fields is taken or cleared before its next <see cref="Backward"/>, as
    /// the warm-up's is).
    /// </summary>
    private void DropGradients()
    {
        if (_pending is { } pending)
        {
            // Backward never set the parameters' grad, so only its list goes.
            for (int i = 0; i < pending.Length; i++) pending[i].Dispose();
            _pending = null;
            return;
        }
        foreach (Parameter p in _views.Values) p.grad = null;
        foreach (Parameter p in _fused.Values) p.grad = null;
    }

    /// <summary>
    /// The leaves whose gradients <see cref="Backward"/> asks autograd for, in order: each slice's own parameter in layout
    /// order, then each joint view (<see cref="ParameterLayout.Fused"/>).
    /// </summary>
    private Tensor[] GradientLeaves => _leaves ??= [.. Layout.Slices.Select(s => (Tensor)_views[s.Name]), .. Layout.Fused.Select(f => (Tensor)_fused[f.Name])];

    private Tensor[]? _leaves;

    /// <summary>The leaves' gradients from the last <see cref="Backward"/>, owned here until they are taken (<see cref="DropGradients"/>); null when they are in the parameters' <c>grad</c>.</summary>
    private Tensor[]? _pending;

    /// <summary>The inputs of <see cref="Backward"/>'s autograd call: the leaves, then the input (replaced at each call).</summary>
    private Tensor[]? _gradientInputs;

    /// <summary>
    /// Back-propagates <paramref name="gradient"/> from <paramref name="output"/>, a computation of this unit's parameters on
    /// <paramref name="input"/> (a leaf that requires its gradient), and returns the input's gradient, in the current dispose
    /// scope. The parameters' gradients are held here, as their <c>grad</c> would be, for the next take (<see cref="TakePackedGradients"/>,
    /// <see cref="DrainGradientsInto(Span{float}, bool)"/>, <see cref="ClearGradients"/>); a second backward before that is refused.
    /// </summary>
    /// <remarks>
    /// One autograd call for the leaves' and the input's gradients, which come back as a list: the parameters' <c>grad</c> is
    /// neither set nor, at the take, read and cleared one parameter at a time. That was about 60 TorchSharp calls per GPT-2
    /// layer more, each a few microseconds of the host in a launch-bound step. <c>AIOS_LAYER_BACKWARD=grad-fields</c> goes
    /// through <c>backward</c> and the fields instead (an A/B of the host's time); the same gradients to the bit.
    /// </remarks>
    public Tensor Backward(Tensor output, Tensor input, Tensor gradient)
    {
        if (_pending is not null)
            throw new InvalidOperationException("The unit's gradients from its last backward were not taken; take or clear them before the next backward.");
        if (GradFields)
        {
            output.backward([gradient]);
            return input.grad ?? throw new InvalidOperationException("The unit's backward produced no gradient for its input.");
        }
        Tensor[] inputs = _gradientInputs ??= [.. GradientLeaves, input];
        inputs[^1] = input;
        IList<Tensor> gradients;
        try
        {
            gradients = autograd.grad([output], inputs, [gradient], false, false, true);
        }
        finally
        {
            inputs[^1] = null!;
        }
        Tensor inputGradient = gradients[^1];
        if (inputGradient.IsInvalid) throw new InvalidOperationException("The unit's backward produced no gradient for its input.");
        var pending = new Tensor[gradients.Count - 1];
        for (int i = 0; i < pending.Length; i++) pending[i] = gradients[i].DetachFromDisposeScope();
        _pending = pending;
        return inputGradient;
    }

    /// <summary><c>AIOS_LAYER_BACKWARD=grad-fields</c>: <see cref="Backward"/> through <c>backward</c> and the parameters' <c>grad</c>, as before 2026-12-07.</summary>
    private static readonly bool GradFields = Environment.GetEnvironmentVariable("AIOS_LAYER_BACKWARD") == "grad-fields";

    /// <summary>Every parameter, in layout order.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> Named() => Layout.Slices.Select(s => (s.Name, _views[s.Name]));

    /// <summary>Copies <paramref name="source"/> (same element count, any dtype or device) into the buffer.</summary>
    public void CopyFrom(Tensor source)
    {
        using var _ = no_grad();
        Flat.copy_(source);
    }

    /// <summary>
    /// Copies raw bytes in the buffer's element type into it: directly for a CPU buffer, through a pinned
    /// host staging tensor (allocated on first use) for a device buffer.
    /// </summary>
    public void LoadBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != ByteLength) throw new ArgumentException($"Expected {ByteLength} bytes, got {bytes.Length}.", nameof(bytes));
        // The whole buffer (and its staging) is rewritten: no update's copy may still be reading or writing them.
        AwaitCommits();
        if (Flat.device_type == DeviceType.CPU)
        {
            bytes.CopyTo(Flat.bytes);
            return;
        }
        Tensor staging = HostStaging();
        bytes.CopyTo(staging.bytes);
        using var _ = no_grad();
        Flat.copy_(staging);
        CommitInFlight = false;
    }

    private Tensor? _hostStaging;

    /// <summary>
    /// Copies raw bytes in the buffer's element type into <see cref="Gathered"/> from element <paramref name="elementOffset"/>
    /// (a ZeRO-3 shard into its place): directly for a CPU buffer, through a pinned staging tensor for a device buffer.
    /// </summary>
    public unsafe void LoadBytesAt(long elementOffset, ReadOnlySpan<byte> bytes)
    {
        long size = Gathered.element_size(), count = bytes.Length / size;
        if (elementOffset == 0 && bytes.Length == ByteLength && ReferenceEquals(Gathered, Flat))
        {
            LoadBytes(bytes);
            return;
        }
        if (bytes.Length % size != 0 || elementOffset < 0 || elementOffset + count > Gathered.numel())
            throw new ArgumentException($"{bytes.Length} bytes from element {elementOffset} do not fit a buffer of {Gathered.numel()} elements.", nameof(bytes));
        using var _ = no_grad();
        if (Flat.device_type == DeviceType.CPU)
        {
            bytes.CopyTo(new Span<byte>((byte*)Native.CudaDriver.DataOf(Gathered) + elementOffset * size, bytes.Length));
            return;
        }
        if (_shardStaging is null || _shardStaging.numel() != count)
        {
            _shardStaging?.Dispose();
            _shardStaging = empty([count], Flat.dtype, CPU).pin_memory().DetachFromDisposeScope();
        }
        bytes.CopyTo(_shardStaging.bytes);
        using var scope = NewDisposeScope();
        Gathered.narrow(0, elementOffset, count).copy_(_shardStaging);
    }

    private Tensor? _shardStaging;

    /// <summary>
    /// Bytes where elements [<paramref name="elementOffset"/>, + <paramref name="count"/>) can be written in the
    /// buffer's element type: the buffer itself on a CPU, the staging tensor (pinned) for a device buffer or with
    /// <see cref="StageWrites"/> (then <see cref="CommitWritable"/> copies them over).
    /// </summary>
    /// <remarks>
    /// A caller that may write a range while a <see cref="CommitWritable"/> without waiting could still be reading it
    /// calls <see cref="AwaitCommits"/> first; the optimizer's update need not (see <see cref="CommitWritable"/>).
    /// </remarks>
    public Span<byte> WritableBytes(long elementOffset, int count)
    {
        int size = (int)Flat.element_size();
        int start = checked((int)(elementOffset * size)), length = count * size;
        if (!Staged) return Flat.bytes.Slice(start, length);
        return HostStaging().bytes.Slice(start, length);
    }

    /// <summary>
    /// Makes what was written into <see cref="WritableBytes"/> the buffer's contents (one copy to a device; nothing on a CPU).
    /// With <paramref name="wait"/> the host waits for the copy (and for everything queued before it on the stream); without,
    /// the copy is queued on the calling thread's stream (the default stream: the one the passes' kernels run on) and the host
    /// goes on. That is safe only when the host rewrites the staged range after kernels it waits for, queued after this copy:
    /// the optimizer's update of a unit rewrites it in the next step's update, after the unit's next backward, whose gradients
    /// it waits for. Any other writer waits (<see cref="AwaitCommits"/> before writing, then a waiting commit).
    /// </summary>
    public void CommitWritable(long elementOffset, int count, bool wait = true)
    {
        if (!Staged) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Flat.narrow(0, elementOffset, count).copy_(_hostStaging!.narrow(0, elementOffset, count), nonBlocking: !wait);
        // A waiting copy synchronises its stream, so it also ends every earlier commit of this buffer (all on that stream).
        CommitInFlight = !wait;
    }

    /// <summary>Whether a <see cref="CommitWritable"/> without waiting may still be reading the staging tensor.</summary>
    internal bool CommitInFlight
    {
        get => Volatile.Read(ref _commitInFlight);
        private set => Volatile.Write(ref _commitInFlight, value);
    }

    private bool _commitInFlight;

    /// <summary>Blocks until no commit is reading the staging tensor (nothing when none was queued without waiting).</summary>
    public void AwaitCommits()
    {
        if (!CommitInFlight) return;
        if (Flat.device_type == DeviceType.CUDA) cuda.synchronize(Flat.device);
        CommitInFlight = false;
    }

    /// <summary>
    /// Writes fp32 <paramref name="values"/>, converted to the buffer's element type (bf16: round to nearest
    /// even), into elements [<paramref name="elementOffset"/>, + length): in place for a CPU buffer; for a device
    /// buffer, converted in parallel into the pinned staging tensor and copied from there in one transfer, waited for
    /// unless <paramref name="wait"/> is false (only for the optimizer's update: see <see cref="CommitWritable"/>).
    /// </summary>
    public void StoreFloats(long elementOffset, ReadOnlySpan<float> values, bool wait = true)
    {
        // A waiting writer (initial values, a restored checkpoint) may come while an update's copy still reads the staging.
        if (wait) AwaitCommits();
        Optim.PrecisionCast.ToWorking(values, WritableBytes(elementOffset, values.Length), Flat.dtype);
        CommitWritable(elementOffset, values.Length, wait);
    }

    /// <summary>Writes go through the staging tensor: always for a device buffer; on a CPU only with <see cref="StageWrites"/>.</summary>
    private bool Staged => StageWrites || Flat.device_type != DeviceType.CPU;

    /// <summary>Stage writes and commit them by a copy even on a CPU device (tests exercise the device path's choices with it).</summary>
    internal bool StageWrites { get; set; }

    /// <summary>The host staging tensor (allocated on first use; page-locked for a device buffer, so a copy from it is one DMA transfer).</summary>
    private Tensor HostStaging()
    {
        if (_hostStaging is null)
        {
            Tensor host = empty([Layout.Elements], Flat.dtype, CPU);
            _hostStaging = (Flat.device_type == DeviceType.CPU ? host : host.pin_memory()).DetachFromDisposeScope();
        }
        return _hostStaging;
    }

    /// <summary>
    /// Adds (or with <paramref name="overwrite"/>, writes) each parameter's gradient, as fp32, into <paramref name="accumulator"/> (layout order) and
    /// drops the gradients. A parameter with no gradient adds nothing. On a CPU device each gradient is
    /// read in place; on another device (or when <see cref="StageGradients"/> is set) the gradients are
    /// packed into one flat tensor on the device and copied in the training precision into a pinned host
    /// buffer in a single transfer, then widened and added on the CPU.
    /// </summary>
    public void DrainGradientsInto(Span<float> accumulator, bool overwrite = false)
    {
        if (accumulator.Length != Layout.Elements) throw new ArgumentException("Accumulator length differs from the layout.", nameof(accumulator));
        if (StageGradients || Flat.device_type != DeviceType.CPU)
        {
            DrainThroughHost(accumulator, overwrite);
            return;
        }
        using var scope = NewDisposeScope();
        for (int k = 0; k < Layout.Slices.Count; k++)
        {
            ParameterSlice s = Layout.Slices[k];
            Tensor? g = GradientOf(k);
            Span<float> dst = accumulator.Slice(checked((int)s.Offset), checked((int)s.Elements));
            if (g is null)
            {
                if (overwrite) dst.Clear();
                continue;
            }
            Tensor g32 = g.to(ScalarType.Float32, CPU).contiguous();
            ReadOnlySpan<float> src = MemoryMarshal.Cast<byte, float>(g32.bytes);
            if (overwrite) src.CopyTo(dst);
            else Optim.SpanMath.AddInPlace(dst, src);
        }
        DropGradients();
    }

    /// <summary>Use the packed single-transfer path even on a CPU device (tests exercise the device path with it).</summary>
    internal bool StageGradients { get; set; }

    private Tensor? _hostGradients;

    /// <summary>
    /// As <see cref="DrainGradientsInto(Span{float}, bool)"/> into an fp32 host tensor (pinned, for a GPU). On a GPU
    /// the first micro-batch's gradients are packed and widened to fp32 on the device and copied straight into
    /// the accumulator in one transfer, so the host does no pass over them; later micro-batches are added on the host.
    /// </summary>
    public void DrainGradientsInto(Tensor hostAccumulator, bool overwrite)
    {
        if (hostAccumulator.dtype != ScalarType.Float32 || hostAccumulator.numel() != Layout.Elements || hostAccumulator.device_type != DeviceType.CPU)
            throw new ArgumentException("The accumulator must be an fp32 host tensor of the layout's size.", nameof(hostAccumulator));
        if (Flat.device_type == DeviceType.CPU || !overwrite)
        {
            DrainGradientsInto(MemoryMarshal.Cast<byte, float>(hostAccumulator.bytes), overwrite);
            return;
        }
        using (var scope = NewDisposeScope())
        {
            hostAccumulator.copy_(Packed().to(ScalarType.Float32));
        }
        DropGradients();
    }

    /// <summary>
    /// The unit's gradients packed back to back in layout order and converted to <paramref name="type"/> on the
    /// device, outside any dispose scope (the caller disposes it); the parameters' gradients are dropped.
    /// </summary>
    public Tensor TakePackedGradients(ScalarType type)
    {
        Tensor result;
        using (var scope = NewDisposeScope())
        {
            result = Converted(Packed(), type).DetachFromDisposeScope();
        }
        DropGradients();
        return result;
    }

    /// <summary><paramref name="packed"/> (the buffer's element type) in <paramref name="type"/>: itself when they agree, without asking the tensor.</summary>
    private Tensor Converted(Tensor packed, ScalarType type) => type == _dtype ? packed : packed.to(type);

    /// <summary>The buffer's element type, read once (each read of a tensor's type is a native call).</summary>
    private readonly ScalarType _dtype;

    /// <summary>
    /// Every gradient back to back in layout order on the device (<see cref="GradientOf"/> for each slice; zeros where a
    /// parameter has none, so every slice keeps its place). Where no member of a joint view has a gradient of its own, the
    /// joint gradient goes in whole (its members are consecutive slices, in its order): one part instead of one per member.
    /// </summary>
    private Tensor Packed()
    {
        var slices = Layout.Slices;
        var parts = new List<Tensor>(slices.Count);
        for (int k = 0; k < slices.Count; k++)
        {
            ParameterSlice s = slices[k];
            if (_groupOf.TryGetValue(s.Name, out int fi) && Layout.Fused[fi] is var f && s.Name == f.Members[0]
                && MembersFollowWithoutOwn(k, f) && JointGradient(fi) is { } joint)
            {
                parts.Add(joint.reshape(-1));
                k += f.Members.Count - 1;
                continue;
            }
            Tensor? g = GradientOf(k);
            parts.Add(g is null ? zeros([s.Elements], _dtype, Flat.device) : g.reshape(-1));
        }
        return cat(parts, 0);
    }

    /// <summary>Whether joint view <paramref name="f"/>'s members are slices k, k + 1, … in its order, none with a gradient of its own.</summary>
    private bool MembersFollowWithoutOwn(int k, FusedSlice f)
    {
        var slices = Layout.Slices;
        if (k + f.Members.Count > slices.Count) return false;
        for (int j = 0; j < f.Members.Count; j++)
            if (slices[k + j].Name != f.Members[j] || OwnGradient(k + j) is not null) return false;
        return true;
    }

    private void DrainThroughHost(Span<float> accumulator, bool overwrite)
    {
        using var scope = NewDisposeScope();
        Tensor packed = Packed();
        if (_hostGradients is null)
        {
            Tensor host = empty([Layout.Elements], Flat.dtype, CPU);
            _hostGradients = (Flat.device_type == DeviceType.CPU ? host : host.pin_memory()).DetachFromDisposeScope();
        }
        _hostGradients.copy_(packed);
        AddStaged(accumulator, _hostGradients, overwrite);
        DropGradients();
    }

    /// <summary>
    /// Widens host gradients in the training precision (<paramref name="staged"/>: this unit's packed layout, as
    /// <see cref="TakePackedGradients"/> gives them, copied to the host) and adds them into <paramref name="accumulator"/>
    /// (or writes them, with <paramref name="overwrite"/>), split over the cores. The same bits whichever thread or copy
    /// brought them: the device path of <see cref="DrainGradientsInto(Span{float}, bool)"/> and a gradient store's
    /// copy-stream download both end here.
    /// </summary>
    public void AddStaged(Span<float> accumulator, Tensor staged, bool overwrite)
    {
        if (accumulator.Length != Layout.Elements || staged.numel() != Layout.Elements || staged.dtype != Flat.dtype || staged.device_type != DeviceType.CPU)
            throw new ArgumentException($"The staged gradients must be {Layout.Elements} host elements of {Flat.dtype} and the accumulator as long.", nameof(staged));
        AddStagedInto(accumulator, staged, overwrite);
    }

    /// <summary>
    /// As <see cref="AddStaged"/>, for gradients whose slot may hold another unit by now: <paramref name="staged"/> (host
    /// memory, fp32, fp16 or bf16) widened and added into <paramref name="accumulator"/> of the same length.
    /// </summary>
    public static void AddStagedInto(Span<float> accumulator, Tensor staged, bool overwrite)
    {
        if (accumulator.Length != staged.numel() || staged.device_type != DeviceType.CPU)
            throw new ArgumentException($"The staged gradients ({staged.numel()} elements on {staged.device_type}) must be host memory as long as the accumulator ({accumulator.Length}).", nameof(staged));
        if (staged.dtype == ScalarType.Float32)
        {
            ReadOnlySpan<float> host = MemoryMarshal.Cast<byte, float>(staged.bytes);
            if (overwrite) host.CopyTo(accumulator);
            else Optim.SpanMath.AddInPlace(accumulator, host);
        }
        else if (staged.dtype == ScalarType.Float16)
        {
            Optim.PrecisionCast.AddFp16(accumulator, MemoryMarshal.Cast<byte, Half>(staged.bytes), overwrite);
        }
        else if (staged.dtype == ScalarType.BFloat16)
        {
            Optim.SpanMath.AddBf16(accumulator, MemoryMarshal.Cast<byte, ushort>(staged.bytes), overwrite);
        }
        else
            throw new NotSupportedException($"Gradients in {staged.dtype} are not supported.");
    }

    /// <summary>Drops every gradient without reading it.</summary>
    public void ClearGradients() => DropGradients();

    /// <summary>Releases the views and the buffer.</summary>
    public void Dispose()
    {
        // A queued commit must not read freed staging.
        AwaitCommits();
        foreach (Parameter p in _views.Values) p.Dispose();
        foreach (Parameter p in _fused.Values) p.Dispose();
        _views.Clear();
        _fused.Clear();
        _hostStaging?.Dispose();
        _shardStaging?.Dispose();
        _hostGradients?.Dispose();
        if (_pending is { } pending) foreach (Tensor g in pending) g.Dispose();
        _pending = null;
        Flat.Dispose();
        if (!ReferenceEquals(Gathered, Flat)) Gathered.Dispose();
    }
}
