// Refits a calibrate-gpu run's engine layer passes with and without the layer products' shape rates (engine_kernels.layer_matmul),
// from the grid log's "pass …" and "floors of …" lines, as this build's calibrate-gpu would, and writes two profiles beside
// CALIBRATED_JSON: PROFILE-refit.json (the fit against the table, with the table, large_matmul_efficiency and the kinds' element-wise
// ratios) and PROFILE-without.json (the fit against the large rate alone, whole kind ratios), so both can price the same runs
// (tools/bench/repredict.py). TABLE_JSON: take layer_matmul from another profile (a log written before the table existed:
// its pass lines carry no tokens, which are then read from the probe's shapes, mb 2/4/8/16 × 1024 per width in order).
//   dotnet build AiOs.Planner.sln -c Release && dotnet fsi tools/bench/refit_layer_matmul.fsx GRID_LOG CALIBRATED_JSON [TABLE_JSON]
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/AiOs.Planner.Core.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/AiOs.Planner.Calibration.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/MathNet.Numerics.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/AiOs.Planner.Engine.dll"
open System
open System.IO
open System.Text.RegularExpressions
open AiOs.Planner.Calibration.Compute
open AiOs.Planner.Hardware
open AiOs.Planner.Descriptions

let args = fsi.CommandLineArgs |> Array.skip 1
let log, profilePath = args.[0], args.[1]
let inv = Globalization.CultureInfo.InvariantCulture
// The console wraps long lines: match across line breaks.
let passRe = Regex(@"pass\s+(\w+)\s+hidden\s+(\d+)\s+(?:tokens\s+(\d+)\s+)?flops\s+(\S+)\s+saved_bytes\s+(\S+)\s+(?:matmul_tflops\s+\S+\s+)?seconds\s+(\S+)\s+fitted\s+(\S+)")
let parsed =
    passRe.Matches(File.ReadAllText log) |> Seq.map (fun m ->
        let g (i: int) = m.Groups.[i].Value
        g 1, int (g 2), (if m.Groups.[3].Success then int64 (g 3) else 0L), Double.Parse(g 4, inv), Double.Parse(g 5, inv), Double.Parse(g 6, inv))
    |> Seq.toList
// Without tokens in the log: saved bytes grow with tokens, and the probe's smallest shape is 2 × 1024 at every width.
let smallest = parsed |> List.groupBy (fun (_, h, _, _, _, _) -> h) |> List.map (fun (h, ps) -> h, ps |> List.map (fun (_, _, _, _, sv, _) -> sv) |> List.min) |> dict
let passes =
    parsed |> List.map (fun (label, h, tokens, flops, saved, seconds) ->
        let t = if tokens > 0L then tokens else int64 (Math.Round(2048.0 * saved / smallest.[h]))
        LayerTiming(flops, saved, h, (label = "backward"), seconds, label, t))
printfn "%d passes" passes.Length
let hw = AiOs.Planner.Hardware.ProfileCatalog.Default.Load profilePath
let gpu = hw.Gpu
let k = gpu.EngineKernels
let table = if args.Length > 2 then AiOs.Planner.Hardware.ProfileCatalog.Default.Load(args.[2]).Gpu.EngineKernels.LayerMatmul else k.LayerMatmul
if isNull (box table) then failwith "no layer_matmul table: pass a TABLE_JSON profile that has one"
// The probe's tiny-shape floors of the main kind (the fit keeps the passes at least twice them): the log's "floors of …" line.
let floorRe = Regex(@"floors of \S+ \([^)]*\):\s+forward\s+(\d+)\s+µs,\s+with\s+autograd\s+(\d+)\s+µs,\s+backward\s+(\d+)\s+µs")
let fm = floorRe.Match(File.ReadAllText log)
if not fm.Success then failwith "no probe floors line in the log"
let us (i: int) = float fm.Groups.[i].Value * 1e-6
printfn "probe floors: forward %.0f, autograd %.0f, backward %.0f us" (us 1 * 1e6) (us 2 * 1e6) (us 3 * 1e6)
// The other kinds' work passes: "floors of FAMILY (KIND): … ; work at h=H MB×SEQ: forward F ms, backward B ms".
let kindRe = Regex(@"floors of (\S+) \(([^)]*)\):\s+forward\s+(\d+)\s+µs,\s+with\s+autograd\s+(\d+)\s+µs,\s+backward\s+(\d+)\s+µs;\s+work at h=(\d+)\s+(\d+)×(\d+):\s+forward\s+(\S+)\s+ms,\s+backward\s+(\S+)\s+ms")
let kinds =
    kindRe.Matches(File.ReadAllText log) |> Seq.map (fun m ->
        let g (i: int) = m.Groups.[i].Value
        let spec = AiOs.Planner.Engine.Probes.CpuComputeProbe.Widened(AiOs.Planner.Models.ModelCatalog.Default.Load(g 1), int (g 6))
        let settings = AiOs.Planner.Settings.TrainingSettings(MicroBatch = int (g 7), SeqLen = int (g 8), Precision = AiOs.Planner.Settings.Precision.Bf16)
        let flops = AiOs.Planner.Simulation.LayerWork.ForwardFlops(spec, settings, 0)
        let saved = AiOs.Planner.Simulation.LayerWork.ForwardSavedBytes(spec, settings, 0)
        let tokens = int64 (g 7) * int64 (g 8)
        KindFloorTiming(g 2, g 1, float (g 3) * 1e-6, float (g 4) * 1e-6, float (g 5) * 1e-6,
            ResizeArray [ LayerTiming(flops, saved, int (g 6), false, float (g 9) * 1e-3, "forward", tokens)
                          LayerTiming(flops, saved, int (g 6), true, float (g 10) * 1e-3, "backward", tokens) ]))
    |> Seq.toList
printfn "%d other kinds with work passes" kinds.Length
let timings table =
    EngineKernelTimings(ResizeArray passes, us 2, 1e-3, 100_000_000L,
        gpu.MatmulRate(AiOs.Planner.Settings.Precision.Bf16), $"refit by tools/bench/refit_layer_matmul.fsx of the timed passes in {log}" + (if args.Length > 2 then $", layer_matmul from {args.[2]}" else ""), us 1, us 3,
        AiOs.Planner.Units.Bandwidth.FromGBps(gpu.MemoryBandwidthGbps.Value),
        null, ResizeArray kinds, null, table, AiOs.Planner.Settings.Precision.Bf16)
let report name (c: EngineKernelCalibration) =
    printfn "%s: efficiency %.4f, saved %.1f GB/s, overhead %.1f us, backward ratio %.3f, work ratio %s, recompute %.3f; RMS %.2f%%, terms %s"
        name c.Kernels.MatmulEfficiency.Value c.Kernels.SavedBytesGbps.Value c.Kernels.LayerOverheadUs.Value c.Kernels.BackwardRatio.Value
        (match c.Kernels.BackwardWorkRatio with null -> "-" | w -> sprintf "%.3f" w.Value) c.Kernels.RecomputeRatio.Value
        (100.0 * c.Fit.RmsRelativeError) (String.Join(", ", c.Fit.Terms))
// The fit is taken in bf16, the precision calibrate-gpu times by default; a log of another precision is refused.
if not (k.MatmulEfficiency.Provenance.Method.Contains("-kind units, bf16,")) then failwith "the calibration's kernels were not timed in bf16 (its matmul_efficiency method says how); this script refits bf16 calibrations only"
let today = DateTime.UtcNow.ToString("yyyy-MM-dd", inv)
let withTable = EngineKernelFit.Fit(timings table, today)
let without = EngineKernelFit.Fit(timings null, today)
report "with layer_matmul" withTable
report "without" without
for kf in withTable.Kernels.KindFloors do
    let v (f: Figure) = if isNull (box f) then nan else f.Value
    printfn "  %s: whole %.3f / %.3f, element-wise %.3f / %.3f" kf.Kind (v kf.ForwardWorkRatio) (v kf.BackwardWorkRatio) (v kf.ForwardElementwiseRatio) (v kf.BackwardElementwiseRatio)
// Each fit written into the calibrated profile: what a calibration at this build would write.
let serialize (v: obj) = Text.Json.Nodes.JsonNode.Parse(Text.Json.JsonSerializer.Serialize(v, Text.Json.JsonSerializerOptions(PropertyNamingPolicy = Text.Json.JsonNamingPolicy.SnakeCaseLower)))
let writeFit (kernels: EngineKernels) (elementwise: bool) (suffix: string) =
    let node = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText profilePath)
    let ek = node.["gpu"].["engine_kernels"].AsObject()
    let put (name: string) (value: obj) = if isNull value then ek.Remove name |> ignore else ek.[name] <- serialize value
    put "matmul_efficiency" kernels.MatmulEfficiency
    put "large_matmul_efficiency" kernels.LargeMatmulEfficiency
    put "layer_matmul" kernels.LayerMatmul
    put "saved_bytes_gbps" kernels.SavedBytesGbps
    put "layer_overhead_us" kernels.LayerOverheadUs
    put "backward_ratio" kernels.BackwardRatio
    put "backward_work_ratio" kernels.BackwardWorkRatio
    put "recompute_ratio" kernels.RecomputeRatio
    for entry in ek.["kind_floors"].AsArray() do
        match kernels.KindFloors |> Seq.tryFind (fun kf -> kf.Kind = entry.["kind"].GetValue<string>()) with
        | Some kf ->
            let set (name: string) (f: Figure) = if isNull (box f) then entry.AsObject().Remove name |> ignore else entry.[name] <- serialize f
            set "forward_work_ratio" kf.ForwardWorkRatio
            set "backward_work_ratio" kf.BackwardWorkRatio
            // The "before" profile prices kinds by their whole ratios, as before element-wise ratios existed.
            set "forward_elementwise_ratio" (if elementwise then kf.ForwardElementwiseRatio else null)
            set "backward_elementwise_ratio" (if elementwise then kf.BackwardElementwiseRatio else null)
        | None -> ()
    let out = Path.ChangeExtension(profilePath, null) + suffix
    File.WriteAllText(out, node.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)))
    AiOs.Planner.Hardware.ProfileCatalog.Default.Load out |> ignore // valid, or this throws naming the field
    printfn "wrote %s" out
writeFit withTable.Kernels true "-refit.json"
writeFit without.Kernels false "-without.json"
