using System.Globalization;
using System.Text.Json;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>One PyTorch eager step time measured by tools/bench/torch_baselines.py: a single GPU, nothing offloaded.</summary>
/// <param name="Model">Bundled model name (models/), e.g. "gpt2-xl".</param>
/// <param name="MicroBatch">Sequences per step.</param>
/// <param name="SeqLen">Tokens per sequence.</param>
/// <param name="Precision">Fp32, or Bf16 (fp32 weights under bf16 autocast, the planner's bf16).</param>
/// <param name="Checkpointing">Activation checkpointing on.</param>
/// <param name="MedianMs">The run's median step time, milliseconds.</param>
/// <param name="Source">Where the row came from, "FILE line N", for messages.</param>
public sealed record EagerBaseline(string Model, int MicroBatch, int SeqLen, Precision Precision, bool Checkpointing, double MedianMs, string Source);

/// <summary>The usable rows of a baselines file, and how many lines were left out (another impl, or a failed run).</summary>
public sealed record EagerBaselineFile(IReadOnlyList<EagerBaseline> Rows, IReadOnlyList<string> Skipped);

/// <summary>
/// Reads the JSON lines of tools/bench/torch_baselines.py. Lines whose "impl" is not "torch-eager", whose "error" is
/// set, or that are its --dry-run plan lines are skipped (and listed); a line without "precision" is bf16, without "grad_checkpointing" not checkpointed.
/// Anything else that does not parse is an error naming the file, the line and the field.
/// </summary>
public static class EagerBaselineReader
{
    /// <summary>The "impl" value of the rows the fit uses.</summary>
    public const string TorchEager = "torch-eager";

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="CalibrationException">The file is missing, or a line is malformed.</exception>
    public static EagerBaselineFile Read(string path)
    {
        if (!File.Exists(path))
            throw new CalibrationException($"{path}: no such file; give --baselines the JSON-lines file written by tools/bench/torch_baselines.py.");
        return Parse(File.ReadLines(path), path);
    }

    /// <summary>Parses the lines of a baselines file; <paramref name="name"/> is the file's name in messages.</summary>
    /// <exception cref="CalibrationException">A malformed line.</exception>
    public static EagerBaselineFile Parse(IEnumerable<string> lines, string name)
    {
        var rows = new List<EagerBaseline>();
        var skipped = new List<string>();
        int number = 0;
        foreach (string line in lines)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{name} line {number}";
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new CalibrationException($"{where}: not a JSON object ({e.Message}); each line must be one object as torch_baselines.py writes it.");
            }
            using (doc)
            {
                var o = doc.RootElement;
                if (o.ValueKind != JsonValueKind.Object)
                    throw new CalibrationException($"{where}: a JSON {o.ValueKind.ToString().ToLowerInvariant()}, not an object; each line must be one object as torch_baselines.py writes it.");
                if (!o.TryGetProperty("impl", out _) && o.TryGetProperty("plan", out _))
                {
                    skipped.Add($"{where}: a --dry-run plan line, not a measurement");
                    continue;
                }
                string impl = Text(o, "impl", where, required: true)!;
                if (impl != TorchEager)
                {
                    skipped.Add($"{where}: impl \"{impl}\", not \"{TorchEager}\"");
                    continue;
                }
                if (o.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
                {
                    skipped.Add($"{where}: the run failed ({(error.ValueKind == JsonValueKind.String ? error.GetString() : error.GetRawText())})");
                    continue;
                }
                rows.Add(Row(o, where));
            }
        }
        return new EagerBaselineFile(rows, skipped);
    }

    private static EagerBaseline Row(JsonElement o, string where)
    {
        string model = Text(o, "model", where, required: true)!;
        int microBatch = PositiveInt(o, "micro_batch", where);
        int seqLen = PositiveInt(o, "seq_len", where);
        var precision = Text(o, "precision", where, required: false) switch
        {
            null or "bf16" => Precision.Bf16,
            "fp32" => Precision.Fp32,
            var other => throw new CalibrationException($"{where}: \"precision\" is \"{other}\"; use \"bf16\" (autocast) or \"fp32\"."),
        };
        bool checkpointing = false;
        if (o.TryGetProperty("grad_checkpointing", out var ckpt) && ckpt.ValueKind != JsonValueKind.Null)
        {
            if (ckpt.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                throw new CalibrationException($"{where}: \"grad_checkpointing\" is {ckpt.GetRawText()}; write true or false.");
            checkpointing = ckpt.GetBoolean();
        }
        if (!o.TryGetProperty("median_ms", out var ms) || ms.ValueKind != JsonValueKind.Number || !ms.TryGetDouble(out double median)
            || !double.IsFinite(median) || median <= 0)
            throw new CalibrationException($"{where}: \"median_ms\" must be a positive number of milliseconds (found {(o.TryGetProperty("median_ms", out var m) ? m.GetRawText() : "nothing")}).");
        return new EagerBaseline(model, microBatch, seqLen, precision, checkpointing, median, where);
    }

    private static string? Text(JsonElement o, string field, string where, bool required)
    {
        if (!o.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
            return required ? throw new CalibrationException($"{where}: the field \"{field}\" is missing; torch_baselines.py writes it on every line.") : null;
        if (v.ValueKind != JsonValueKind.String)
            throw new CalibrationException($"{where}: \"{field}\" is {v.GetRawText()}, not a string.");
        return v.GetString();
    }

    private static int PositiveInt(JsonElement o, string field, string where)
    {
        if (!o.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
            throw new CalibrationException($"{where}: the field \"{field}\" is missing; torch_baselines.py writes it on every line.");
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n <= 0)
            throw new CalibrationException(string.Create(CultureInfo.InvariantCulture, $"{where}: \"{field}\" is {v.GetRawText()}; it must be a positive whole number."));
        return n;
    }
}
