using System.Runtime.InteropServices;
using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

public class DoctorCommandTests
{
    private static readonly string[] Statuses = ["pass", "warn", "fail"];

    private static bool HasCudaDriver()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out nint handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }

    [Fact]
    public void Given_this_machine_When_doctor_runs_on_a_disk_folder_Then_a_missing_gpu_is_a_warning_with_the_fix_and_the_exit_code_is_ok()
    {
        using var tmp = new TempDir("aios-doctor-");
        string folder = tmp.Path;

        var r = CliRunner.Run("doctor", "--nvme-path", folder);

        Assert.Contains("CUDA driver", r.Console);
        Assert.Contains("TorchSharp (CPU)", r.Console);
        Assert.Contains("O_DIRECT", r.Console);
        Assert.Contains("free RAM", r.Console);
        if (!HasCudaDriver())
        {
            Assert.Contains("not found", r.Console);
            Assert.Contains("install the NVIDIA driver", r.Console);
        }
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
    }

    [Fact]
    public void Given_a_tmpfs_folder_When_doctor_runs_Then_o_direct_fails_with_the_fix_and_the_exit_code_says_so()
    {
        if (!Directory.Exists("/dev/shm")) return; // no tmpfs here
        string shm = Path.Combine("/dev/shm", $"aios-doctor-cli-{Guid.NewGuid():N}");
        try
        {
            var r = CliRunner.Run("doctor", "--nvme-path", shm, "--json");

            Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
            using var doc = JsonDocument.Parse(r.Stdout);
            JsonElement direct = doc.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "O_DIRECT");
            Assert.Equal("fail", direct.GetProperty("status").GetString());
            Assert.Contains("tmpfs", direct.GetProperty("detail").GetString());
            Assert.Contains("local NVMe drive", direct.GetProperty("fix").GetString());
            Assert.False(doc.RootElement.GetProperty("ok").GetBoolean());
        }
        finally
        {
            if (Directory.Exists(shm)) Directory.Delete(shm, recursive: true);
        }
    }

    [Fact]
    public void Given_json_When_doctor_runs_Then_stdout_is_one_json_document_with_every_check_and_the_console_is_empty()
    {
        using var tmp = new TempDir("aios-doctor-");
        string folder = tmp.Path;

        var r = CliRunner.Run("doctor", "--nvme-path", folder, "--json");

        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(r.Stdout), new JsonReaderOptions { AllowMultipleValues = true });
        using var doc = JsonDocument.ParseValue(ref reader);
        Assert.False(reader.Read(), "a second JSON value follows the first");
        string[] names = doc.RootElement.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToArray();
        Assert.Equal([".NET runtime", "TorchSharp (CPU)", "CUDA driver"], names[..3]);
        Assert.Contains("NVRTC", names);
        Assert.Equal(["O_DIRECT", "free RAM", "free disk"], names[^3..]);
        Assert.All(doc.RootElement.GetProperty("checks").EnumerateArray(),
            c => Assert.Contains(c.GetProperty("status").GetString(), Statuses));
        Assert.Equal(string.Empty, r.Console);
    }

    [Fact]
    public void Given_a_folder_name_with_markup_When_doctor_renders_Then_it_is_printed_as_text()
    {
        using var tmp = new TempDir("aios-doctor-");
        string folder = tmp.Combine("[red]odd[/]");

        var r = CliRunner.Run("doctor", "--nvme-path", folder);

        Assert.Contains("[red]odd[/]", r.Console);
        // The markup of the fixes is rendered, not printed.
        Assert.DoesNotContain("[yellow]", r.Console.Replace("[red]odd[/]", "", StringComparison.Ordinal));
    }
}
