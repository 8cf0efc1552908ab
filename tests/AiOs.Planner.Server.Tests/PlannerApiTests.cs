namespace AiOs.Planner.Server.Tests;

/// <summary>
/// Given the same inputs, each endpoint answers the document the CLI prints with --json (the CLI run in-process),
/// and bad input gets a 400 carrying the CLI's message.
/// </summary>
public sealed class PlannerApiTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static readonly object OffloadSettings = new
    {
        zero_stage = "zero3", param_offload = "cpu", optimizer_offload = "cpu", micro_batch = 8, seq_len = 1024, activation_checkpointing = true,
    };

    [Fact]
    public async Task Plan_without_settings_equals_the_cli_with_no_setting_flags()
    {
        var (status, text) = await server.Post("/api/plan", new { model = "gpt2-xl", hardware = "h200-1x" });
        var cli = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--json");

        Assert.Equal(200, status);
        Assert.Equal(cli.Stdout, text);
    }

    [Theory]
    [InlineData("gpt2-xl", "h200-1x")]
    [InlineData("llama-2-7b", "rtx4090-64gb-pcie4")]
    public async Task Plan_with_settings_equals_the_cli_with_the_same_settings_file(string model, string hardware)
    {
        var (status, text) = await server.Post("/api/plan", new { model, hardware, settings = OffloadSettings });
        var cli = ServerFixture.Cli("plan", "-m", model, "-H", hardware, "--settings", server.SettingsFile(OffloadSettings), "--json");

        Assert.Equal(200, status);
        Assert.Equal(cli.Stdout, text);
    }

    [Fact]
    public async Task A_plan_that_does_not_fit_is_the_cli_document_with_its_problems()
    {
        var settings = new { micro_batch = 64, seq_len = 1024 };
        var (status, text) = await server.Post("/api/plan", new { model = "llama-2-7b", hardware = "rtx4090-64gb-pcie4", settings });
        var cli = ServerFixture.Cli("plan", "-m", "llama-2-7b", "-H", "rtx4090-64gb-pcie4", "--settings", server.SettingsFile(settings), "--json");

        Assert.Equal(200, status);
        Assert.Equal(ExitCodesInfeasible, cli.ExitCode);
        Assert.Equal(cli.Stdout, text);
        Assert.Contains("\"feasible\": false", text);
    }

    private const int ExitCodesInfeasible = 3;
    private static readonly string[] TwoModels = ["gpt2", "gpt2-medium"], OneMachine = ["rtx4090-64gb-pcie4"];

    [Fact]
    public async Task The_timeline_equals_the_file_the_cli_writes_with_timeline()
    {
        string file = Path.Combine(server.Root, $"timeline-{Guid.NewGuid():N}.jsonl");
        var (status, text) = await server.Post("/api/plan/timeline", new { model = "gpt2-xl", hardware = "h200-1x", settings = OffloadSettings });
        var cli = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", server.SettingsFile(OffloadSettings), "--timeline", file, "--json");

        Assert.Equal(200, status);
        Assert.Equal(0, cli.ExitCode);
        Assert.Equal(File.ReadAllText(file), text);
        Assert.Contains("\"type\":\"span\"", text);
    }

    [Fact]
    public async Task Ds_config_equals_the_cli_ds_config()
    {
        var (status, text) = await server.Post("/api/ds-config", new { model = "gpt2-xl", hardware = "h200-1x", settings = OffloadSettings });
        var cli = ServerFixture.Cli("ds-config", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", server.SettingsFile(OffloadSettings));

        Assert.Equal(200, status);
        Assert.Equal(cli.Stdout, text);
    }

    [Fact]
    public async Task The_settings_file_the_page_downloads_plans_the_same_as_the_settings_it_came_from()
    {
        var (_, file) = await server.Post("/api/settings-file", new { model = "gpt2-xl", hardware = "h200-1x", settings = OffloadSettings });
        string path = Path.Combine(server.Root, "downloaded-settings.json");
        File.WriteAllText(path, file);

        var fromDownload = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", path, "--json");
        var fromOriginal = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", server.SettingsFile(OffloadSettings), "--json");

        Assert.Equal(fromOriginal.Stdout, fromDownload.Stdout);
    }

    [Theory]
    [InlineData("/api/models", "models")]
    [InlineData("/api/profiles", "profiles")]
    public async Task Catalogs_equal_the_cli_lists(string path, string command)
    {
        var (status, text) = await server.Get(path);

        Assert.Equal(200, status);
        Assert.Equal(ServerFixture.Cli(command, "--json").Stdout, text);
    }

    [Fact]
    public async Task Tune_equals_the_cli_tune_but_for_its_elapsed_time()
    {
        var settings = new { seq_len = 512 };
        var (status, text) = await server.Post("/api/tune", new { model = "gpt2", hardware = "rtx4090-64gb-pcie4", settings, budget = 150 });
        var cli = ServerFixture.Cli("tune", "-m", "gpt2", "-H", "rtx4090-64gb-pcie4", "--settings", server.SettingsFile(settings), "--budget", "150", "--json");

        Assert.Equal(200, status);
        Assert.Equal(WithoutElapsed(cli.Stdout), WithoutElapsed(text));
        Assert.Contains("\"best\": {", text);
    }

    [Fact]
    public async Task A_tune_request_that_cannot_run_is_the_cli_document_with_its_problems()
    {
        var settings = new { seq_len = 512 };
        var (status, text) = await server.Post("/api/tune", new { model = "gpt2", hardware = "rtx4090-64gb-pcie4", settings, memory_headroom = 1.5, global_batch = 3, max_micro_batch = 2 });
        var cli = ServerFixture.Cli("tune", "-m", "gpt2", "-H", "rtx4090-64gb-pcie4", "--settings", server.SettingsFile(settings), "--memory-headroom", "1.5",
            "--global-batch", "3", "--max-micro-batch", "2", "--json");

        Assert.Equal(200, status);
        Assert.Equal(2, cli.ExitCode);
        Assert.Equal(WithoutElapsed(cli.Stdout), WithoutElapsed(text));
        Assert.Contains("--memory-headroom", text);
    }

    [Fact]
    public async Task Whatif_equals_the_cli_whatif()
    {
        var (status, text) = await server.Post("/api/whatif", new { models = TwoModels, hardware = OneMachine, budget = 60, upgrades = false, seq_len = 512 });
        var cli = ServerFixture.Cli("whatif", "-m", "gpt2,gpt2-medium", "-H", "rtx4090-64gb-pcie4", "--budget", "60", "--no-upgrades", "--seq-len", "512", "--json");

        Assert.Equal(200, status);
        Assert.Equal(cli.Stdout, text);
    }

    [Fact]
    public async Task Check_nvme_equals_the_cli_for_a_folder_inside_the_root()
    {
        string folder = Directory.CreateDirectory(Path.Combine(server.Nvme, "check")).FullName;
        var (status, text) = await server.Post("/api/check-nvme", new { path = folder });
        var cli = ServerFixture.Cli("check-nvme", folder, "--json");

        Assert.Equal(200, status);
        // Free space is read at each call, and other tests write to the same disk meanwhile: compare all but that figure.
        static string Steady(string json) => System.Text.RegularExpressions.Regex.Replace(json, "\"free_bytes\": [0-9]+", "\"free_bytes\": 0");
        Assert.Contains("\"free_bytes\": ", text);
        Assert.Equal(Steady(cli.Stdout), Steady(text));
    }

    [Fact]
    public async Task A_setting_out_of_range_is_a_400_with_the_cli_message()
    {
        var settings = new { micro_batch = 0 };
        string file = server.SettingsFile(settings);
        var (status, text) = await server.Post("/api/plan", new { model = "gpt2-xl", hardware = "h200-1x", settings });
        var cli = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", file, "--json");

        Assert.Equal(400, status);
        Assert.Equal(2, cli.ExitCode);
        Assert.Equal(CliError(cli).Replace(file, "settings", StringComparison.Ordinal), ServerFixture.Error(text));
        Assert.Contains("--micro-batch", ServerFixture.Error(text));
    }

    [Fact]
    public async Task An_unknown_choice_is_a_400_with_the_cli_message()
    {
        var settings = new { zero_stage = "zero7" };
        string file = server.SettingsFile(settings);
        var (status, text) = await server.Post("/api/plan", new { model = "gpt2-xl", hardware = "h200-1x", settings });
        var cli = ServerFixture.Cli("plan", "-m", "gpt2-xl", "-H", "h200-1x", "--settings", file, "--json");

        Assert.Equal(400, status);
        Assert.Equal(CliError(cli).Replace(file, "settings", StringComparison.Ordinal), ServerFixture.Error(text));
    }

    [Fact]
    public async Task A_sequence_longer_than_the_model_takes_is_a_400_with_the_cli_message()
    {
        var settings = new { seq_len = 4096 };
        string file = server.SettingsFile(settings);
        var (status, text) = await server.Post("/api/ds-config", new { model = "gpt2", hardware = "h200-1x", settings });
        var cli = ServerFixture.Cli("ds-config", "-m", "gpt2", "-H", "h200-1x", "--settings", file);

        Assert.Equal(400, status);
        Assert.Equal(CliError(cli).Replace(file, "settings", StringComparison.Ordinal), ServerFixture.Error(text));
    }

    /// <summary>The CLI's one error message (stderr after "error: "), lines joined as the exception had them.</summary>
    private static string CliError(ServerFixture.CliResult cli)
    {
        string stderr = cli.Stderr.ReplaceLineEndings("\n").TrimEnd('\n');
        Assert.StartsWith("error: ", stderr);
        return stderr["error: ".Length..].Replace("\n", System.Environment.NewLine, StringComparison.Ordinal);
    }

    /// <summary>The document with its wall-clock parts (elapsed_s, and "in 0.8 s." in the explanation) blanked: two runs differ only there.</summary>
    private static string WithoutElapsed(string json) => System.Text.RegularExpressions.Regex.Replace(
        System.Text.RegularExpressions.Regex.Replace(json, "\"elapsed_s\": [0-9.eE+-]+", "\"elapsed_s\": 0"), @" in [0-9.,]+ s\.", " in ? s.");
}
