using AiOs.Planner.Memory;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>
/// The resources one GPU's training process uses. GPUs of a data-parallel group do the same work in
/// lock-step, so one representative GPU is simulated and shared devices (drives, CPU, a PCIe switch, the
/// network) give it its share.
/// </summary>
public enum ResourceKind
{
    /// <summary>The compute device: a GPU, or the CPU on a CPU-only machine.</summary>
    Compute,
    /// <summary>Host→device copy engine.</summary>
    H2d,
    /// <summary>Device→host copy engine.</summary>
    D2h,
    /// <summary>The node's NVMe drives; reads and writes share them.</summary>
    Nvme,
    /// <summary>CPU cores doing optimizer work.</summary>
    Cpu,
    /// <summary>GPU-to-GPU and node-to-node links for all-gather and reduce-scatter.</summary>
    Collective,
    /// <summary>
    /// The host thread that adds later micro-batches' gradients into the fp32 sums (<see cref="OpKind.GradAccumulate"/>),
    /// its passes split over the CPU's cores: apart from the downloading thread, so the next download need not wait for an add.
    /// </summary>
    HostSums,
    /// <summary>
    /// Host→device copies the CPU update queues behind itself (<see cref="OpKind.ResidentUpload"/>): the host link's, but outside
    /// the order in which the host issues its other uploads, so a checkpoint fetch or parameter upload after an update in
    /// program order does not wait for that update. Its bandwidth is not shared with <see cref="H2d"/> in the simulator (these
    /// copies are a sub-group's working-precision bytes, small beside the update that makes them).
    /// </summary>
    QueuedH2d,
}

/// <summary>What an operation does.</summary>
public enum OpKind
{
    /// <summary>Parameters of a layer from NVMe into a pinned buffer.</summary>
    ParamRead,
    /// <summary>Parameters (this GPU's share) host→device.</summary>
    ParamUpload,
    /// <summary>All-gather of a layer's parameters across GPUs.</summary>
    AllGather,
    Forward,
    /// <summary>Re-running a layer's forward under activation checkpointing.</summary>
    Recompute,
    Backward,
    /// <summary>Reduce-scatter of a layer's gradients across GPUs.</summary>
    ReduceScatter,
    /// <summary>Gradients (this GPU's share) device→host.</summary>
    GradDownload,
    /// <summary>Gradients written to NVMe.</summary>
    GradWrite,
    /// <summary>A unit's gradient accumulated so far read back from NVMe, to add the next micro-batch's to it (<see cref="NvmeGradientWrites.ReadModifyWriteEachMicroBatch"/>).</summary>
    GradRead,
    /// <summary>Optimizer states (and gradients on NVMe) of a sub-group read from NVMe.</summary>
    OptimizerRead,
    /// <summary>Adam on one sub-group, on the CPU (offloaded) or the GPU.</summary>
    OptimizerStep,
    /// <summary>Optimizer states of a sub-group written to NVMe.</summary>
    OptimizerWrite,
    /// <summary>Updated low-precision parameters written back to their tier (NVMe write or host→device copy).</summary>
    ParamWriteBack,
    /// <summary>A layer's activation checkpoint copied device→host after its forward (<c>cpu_checkpointing</c>).</summary>
    ActivationOffload,
    /// <summary>A layer's activation checkpoint copied host→device before its recompute (<c>cpu_checkpointing</c>).</summary>
    ActivationFetch,
    /// <summary>Delayed schedule: the updated fp32 master written into the working copies the passes read, after everything else of the step.</summary>
    MasterWriteBack,
    /// <summary>
    /// The engine with the optimizer offloaded and the parameters on the device: a CPU-updated sub-group's training-precision copy
    /// copied host→device from pinned staging after its update. The update queues the copy on the device's stream without waiting
    /// (<c>FlatParameters.CommitWritable</c>), so it is link traffic the next use of the unit waits for, not CPU time, on
    /// <see cref="ResourceKind.QueuedH2d"/>. The engine's handler does nothing (the update queued the copy); on a CPU device the
    /// update wrote the unit in place and the operation moves nothing, kept so both sides number their operations alike.
    /// </summary>
    ResidentUpload,
    /// <summary>
    /// A later micro-batch's gradients, which its <see cref="GradDownload"/> queued into pinned staging, added into the unit's
    /// fp32 sum on the host once their copy has landed (and, after the step's last micro-batch, the unit's Σg² taken from the
    /// sum): <see cref="Operation.HostAdd"/>, on a thread of its own (<see cref="ResourceKind.HostSums"/>), after its download.
    /// Apart from the download so the device slot the gradients came from is free once they are packed, not after the host
    /// work, and apart from the downloading thread so the next units' downloads run while it adds; each staging buffer
    /// takes a new download once the add reading it has ended (<see cref="ProgramShape.HostAddsLaterGradients"/>).
    /// </summary>
    GradAccumulate,
}

/// <summary>
/// What a <see cref="OpKind.MasterWriteBack"/> moves besides its host memory pass (<see cref="Operation.Bytes"/>): the working
/// copies of device-resident units uploaded, optimizer state on NVMe read for its master, parameter files on NVMe written.
/// </summary>
public readonly record struct MasterWriteBackTraffic(Bytes Upload, Bytes NvmeRead, Bytes NvmeWrite);

/// <summary>
/// The host work after a later micro-batch's gradient copy (a <see cref="OpKind.GradAccumulate"/>, or with several ranks the
/// <see cref="OpKind.GradDownload"/> itself, after its synchronous copy): <paramref name="Elements"/>
/// gradients of <paramref name="SourceBytes"/> bytes each (the working precision) widened and added into the fp32 sum
/// (read the sum, read the gradient, write the sum), and with <paramref name="SumsSquares"/> (the step's last micro-batch)
/// a second pass reading the sum for its Σg². <see cref="SquaresOnly"/>: no add, the Σg² pass alone (the step's only
/// micro-batch where the engine downloads without copy streams: several ranks). With copy streams the only micro-batch
/// brings its Σg² from the device: no host work.
/// </summary>
public readonly record struct HostAccumulation(long Elements, int SourceBytes, bool SumsSquares)
{
    /// <summary>Bytes of host memory traffic per element of the add (none for <see cref="SquaresOnly"/>).</summary>
    public int AddBytesPerElement => Adds ? 8 + SourceBytes : 0;

    /// <summary>Bytes per element of the Σg² pass (it reads the fp32 sum).</summary>
    public const int SquaresBytesPerElement = 4;

    /// <summary>Whether the download adds into the sum before its Σg² (false: <see cref="SquaresOnly"/>).</summary>
    public bool Adds { get; init; } = true;

    /// <summary>Bytes per element the Σg² pass reads: the fp32 sum's 4, or 2 where the host keeps one micro-batch's bf16 gradients.</summary>
    public int SquaresBytes { get; init; } = SquaresBytesPerElement;

    /// <summary>
    /// The step's only micro-batch downloaded without copy streams: the copy lands in the host store as it is, and the engine
    /// then reads the store once for the unit's Σg² (<c>CpuGradientStore.Download</c>), <paramref name="storeBytes"/> per element.
    /// </summary>
    public static HostAccumulation SquaresOnly(long elements, int storeBytes) =>
        new(elements, 0, SumsSquares: true) { Adds = false, SquaresBytes = storeBytes };

    /// <summary>Bytes of host memory the work moves: the add's and the Σg² pass's.</summary>
    public double HostBytes => (double)Elements * (AddBytesPerElement + (SumsSquares ? SquaresBytes : 0));
}

/// <summary>The phase of a step an operation belongs to.</summary>
public enum StepPhase
{
    Forward,
    Backward,
    Optimizer,
}

/// <summary>A change of a memory tier's level when an operation starts or ends.</summary>
public readonly record struct MemoryEffect(MemoryTier Tier, long Bytes, bool AtEnd);

/// <summary>
/// One operation of a step program. The scheduler decides what it moves and after what; the simulator
/// gives it a duration; the engine executes it and records a span with the same id.
/// </summary>
public sealed class Operation
{
    public required int Id { get; init; }
    public required OpKind Kind { get; init; }
    public required ResourceKind Resource { get; init; }
    public required StepPhase Phase { get; init; }
    /// <summary>The unit whose parameters, activations or gradients the operation works on.</summary>
    public required UnitId Unit { get; init; }
    /// <summary>The optimizer sub-group the operation reads, updates or writes; null for other operations.</summary>
    public SubGroupRef? SubGroup { get; init; }
    /// <summary>The host staging buffer (parameter reads and uploads) or optimizer swap buffer (sub-group reads, steps and writes) it uses; -1 none.</summary>
    public int Slot { get; init; } = -1;
    /// <summary>The device slot holding the unit's parameters (uploads, and the compute that uses them); -1 none or resident.</summary>
    public int DeviceSlot { get; init; } = -1;
    public int MicroBatch { get; init; }
    /// <summary>Bytes moved (transfers) or touched by the optimizer.</summary>
    public Bytes Bytes { get; init; }
    /// <summary>Matmul FLOPs (compute operations).</summary>
    public double Flops { get; init; }
    /// <summary>Bytes of memory traffic of element-wise work (compute operations).</summary>
    public double ElementwiseBytes { get; init; }
    /// <summary>
    /// Bytes the resident engine's gradient landing moves with this compute operation (Engine <c>DeviceTrainer.Land</c>):
    /// a unit's gradients packed into its flat buffer as its backward ends (the outer block's with the embedding's) and,
    /// under accumulation, added into the fp32 sums (zeroed at the first micro-batch's embedding forward) or, in fp32
    /// training, into the buffer. Streaming passes over device memory, not part of the fitted layer work.
    /// </summary>
    public double SumBytes { get; init; }
    /// <summary>Bytes of a dense vocabulary-size weight gradient the operation produces (the embedding's backward).</summary>
    public long DenseGradientBytes { get; init; }
    /// <summary>Parameters updated (optimizer steps).</summary>
    public long Parameters { get; init; }
    /// <summary>
    /// A resident update that runs the CPU optimizer's own kernel (a CPU device: <c>HostAdamW</c>'s CpuAdam, or the 8-bit
    /// BlockwiseAdam): its pass, priced at the profile's measured Adam rate for it (<see cref="Hardware.CpuSpec.AdamRateFor(Optim.OptimizerStateFormat, Hardware.CpuUpdatePass)"/>),
    /// with <see cref="ElementwiseBytes"/> holding only the passes beside that kernel. Null for an update whose bytes stream at
    /// the device's rate (a GPU's fused kernel, TorchSharp operations) and for every other operation.
    /// </summary>
    public Hardware.CpuUpdatePass? HostKernelPass { get; init; }
    /// <summary><see cref="OpKind.MasterWriteBack"/>: its device and NVMe traffic (done in series with its host pass); zero for other operations.</summary>
    public MasterWriteBackTraffic WriteBackTraffic { get; init; }
    /// <summary>
    /// <see cref="OpKind.GradAccumulate"/>: the host add of a micro-batch after the first, after its download's copy
    /// (<see cref="ProgramShape.HostAddsLaterGradients"/>); <see cref="OpKind.GradDownload"/> with several ranks (no copy
    /// streams): the same add done by the download itself after its synchronous copy, or for the step's only micro-batch the
    /// Σg² pass alone (<see cref="HostAccumulation.SquaresOnly"/>); zero elements for other operations.
    /// </summary>
    public HostAccumulation HostAdd { get; init; }
    /// <summary>
    /// <see cref="OpKind.OptimizerRead"/> of a split master (<c>--master-weights split</c>): the staging slot that still holds its
    /// unit's parameters from the unit's last <see cref="OpKind.ParamRead"/> of the step, from which the engine copies the
    /// sub-group's high halves (a host copy; <see cref="Bytes"/> leaves them out) instead of reading them from the unit's file
    /// again. The read depends on that ParamRead, and the next ParamRead into the slot depends on the read
    /// (<see cref="ProgramShape.StagedHighHalves"/>). −1: from the file, or no split master.
    /// </summary>
    public int HighHalvesSlot { get; init; } = -1;
    /// <summary>Whether an NVMe operation writes (reads otherwise).</summary>
    public bool IsWrite { get; init; }
    /// <summary>Operations that must end before this one starts.</summary>
    public required int[] Deps { get; init; }
    public MemoryEffect[] Effects { get; init; } = [];

    /// <summary>
    /// The number a timeline's <c>layer</c> column shows: the unit's <see cref="UnitId.Number"/>, or for a sub-group of the
    /// flat model (which belongs to no unit) the sub-group's index.
    /// </summary>
    public int TraceLayer => SubGroup is { Unit.Kind: UnitKind.Model } g ? g.Index : Unit.Number;

    public override string ToString() => $"#{Id} {Kind} {Unit}{(SubGroup is { } g ? $" g{g.Index}" : "")} mb{MicroBatch} on {Resource}";
}
