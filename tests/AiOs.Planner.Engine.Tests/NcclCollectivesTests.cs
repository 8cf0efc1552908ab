using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Collectives;
using Xunit.Abstractions;

namespace AiOs.Planner.Engine.Tests;

/// <summary>NCCL off the GPU machine: the library loads only when used, and its absence is a clear error (the 2-GPU run is in docs/user-guide.md, "Several GPUs").</summary>
public class NcclCollectivesTests
{
    [Fact]
    public void Given_this_machine_When_NCCLs_version_is_asked_Then_it_is_reported_or_the_error_lists_where_it_looked_and_the_fix()
    {
        bool present = NcclLibrary.Candidates().Any(c => NativeLibrary.TryLoad(c, out nint h) && Free(h));
        if (present)
        {
            Assert.True(NcclCollectives.Version() >= 21000);
            return;
        }
        var e = Assert.Throws<DllNotFoundException>(() => NcclCollectives.Version());
        Assert.Contains("libnccl.so.2", e.Message, StringComparison.Ordinal);
        Assert.Contains(NcclLibrary.PathVariable, e.Message, StringComparison.Ordinal);
        Assert.Contains("pip install torch", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_torch_lib_folder_on_LD_LIBRARY_PATH_When_candidates_are_listed_Then_the_nvidia_nccl_wheel_beside_it_is_one()
    {
        string? saved = System.Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        try
        {
            System.Environment.SetEnvironmentVariable("LD_LIBRARY_PATH", "/venv/lib/python3.12/site-packages/torch/lib");
            Assert.Contains("/venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2", NcclLibrary.Candidates());
        }
        finally
        {
            System.Environment.SetEnvironmentVariable("LD_LIBRARY_PATH", saved);
        }
    }

    private static bool Free(nint handle)
    {
        NativeLibrary.Free(handle);
        return true;
    }
}

/// <summary>A fact that runs only where AIOS_MULTI_GPU=1 says that two or more GPUs and PyTorch's CUDA libtorch are there; reported as skipped elsewhere.</summary>
public sealed class MultiGpuFactAttribute : FactAttribute
{
    public MultiGpuFactAttribute()
    {
        if (System.Environment.GetEnvironmentVariable("AIOS_MULTI_GPU") != "1")
            Skip = "needs 2+ GPUs: run with AIOS_MULTI_GPU=1 on a multi-GPU machine (docs/user-guide.md, \"Several GPUs\")";
    }
}

/// <summary>NCCL on real GPUs: two ranks launched as processes, each checking its results and printing the all-reduce bandwidth.</summary>
[Trait("Category", "MultiGpu")]
public class NcclCollectivesMultiGpuTests(ITestOutputHelper output)
{
    [MultiGpuFact]
    public void Given_two_GPUs_When_ranks_run_the_collectives_through_NCCL_Then_every_result_is_exact()
    {
        var lines = new List<string>();
        string? host = System.Environment.ProcessPath;
        string dotnet = host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        var result = RankLauncher.Run(new RankLaunchRequest(dotnet, [typeof(CollectivesTestHost).Assembly.Location, CollectivesTestHost.Verb, "nccl"], 2)
        {
            Output = (rank, line) => { lock (lines) lines.Add($"[rank {rank}] {line}"); },
        });
        foreach (string line in lines) output.WriteLine(line);
        Assert.True(result.Succeeded, result.Describe());
        Assert.Equal(2, lines.Count(l => l.Contains("bus bandwidth", StringComparison.Ordinal)));
    }
}
