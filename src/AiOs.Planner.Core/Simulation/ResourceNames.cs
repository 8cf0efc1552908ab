using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Simulation;

/// <summary>The names resources carry in JSON, timelines and tables: stable, and plain to a user.</summary>
public static class ResourceNames
{
    public static string Of(ResourceKind kind, bool hasGpu) => kind switch
    {
        ResourceKind.Compute => hasGpu ? "gpu" : "cpu_compute",
        ResourceKind.H2d => hasGpu ? "pcie_h2d" : "memcpy_in",
        ResourceKind.D2h => hasGpu ? "pcie_d2h" : "memcpy_out",
        ResourceKind.Nvme => "nvme",
        ResourceKind.Cpu => "cpu_optimizer",
        ResourceKind.Collective => "network",
        ResourceKind.HostSums => "host_sums",
        ResourceKind.QueuedH2d => hasGpu ? "pcie_h2d_queued" : "memcpy_in_queued",
        _ => kind.ToString().ToLowerInvariant(),
    };
}
