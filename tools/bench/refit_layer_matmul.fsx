// Refits a calibrate-gpu run's engine layer passes with and without the layer products' shape rates (engine_kernels.layer_matmul),
// from the grid log's "pass …" lines, and writes PROFILE-without.json: the calibrated profile with the fit taken against the large
// rate alone, so both fits can price the same runs (tools/bench/repredict.py).
//   dotnet build AiOs.Planner.sln -c Release && dotnet fsi tools/bench/refit_layer_matmul.fsx GRID_LOG CALIBRATED_JSON
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
let passRe = Regex(@"pass\s+(\w+)\s+hidden\s+(\d+)\s+tokens\s+(\d+)\s+flops\s+(\S+)\s+saved_bytes\s+(\S+)\s+matmul_tflops\s+(\S+)\s+seconds\s+(\S+)\s+fitted\s+(\S+)")
let passes =
    passRe.Matches(File.ReadAllText log) |> Seq.choose (fun m ->
        if not m.Success then None else
        let g (i: int) = m.Groups.[i].Value
        Some (LayerTiming(Double.Parse(g 4, inv), Double.Parse(g 5, inv), int (g 2), (g 1 = "backward"), Double.Parse(g 7, inv), g 1, int64 (g 3))))
    |> Seq.toList
printfn "%d passes" passes.Length
let hw = AiOs.Planner.Hardware.ProfileCatalog.Default.Load profilePath
let gpu = hw.Gpu
let k = gpu.EngineKernels
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
        gpu.MatmulRate(AiOs.Planner.Settings.Precision.Bf16), "refit", us 1, us 3,
        AiOs.Planner.Units.Bandwidth.FromGBps(gpu.MemoryBandwidthGbps.Value),
        null, ResizeArray kinds, null, table, AiOs.Planner.Settings.Precision.Bf16)
let report name (c: EngineKernelCalibration) =
    printfn "%s: efficiency %.4f, saved %.1f GB/s, overhead %.1f us, backward ratio %.3f, work ratio %s, recompute %.3f; RMS %.2f%%, terms %s"
        name c.Kernels.MatmulEfficiency.Value c.Kernels.SavedBytesGbps.Value c.Kernels.LayerOverheadUs.Value c.Kernels.BackwardRatio.Value
        (match c.Kernels.BackwardWorkRatio with null -> "-" | w -> sprintf "%.3f" w.Value) c.Kernels.RecomputeRatio.Value
        (100.0 * c.Fit.RmsRelativeError) (String.Join(", ", c.Fit.Terms))
let withTable = EngineKernelFit.Fit(timings k.LayerMatmul, "refit")
let without = EngineKernelFit.Fit(timings null, "refit")
report "with layer_matmul" withTable
report "without" without
for kf in withTable.Kernels.KindFloors do
    let v (f: Figure) = if isNull (box f) then nan else f.Value
    printfn "  %s: whole %.3f / %.3f, element-wise %.3f / %.3f" kf.Kind (v kf.ForwardWorkRatio) (v kf.BackwardWorkRatio) (v kf.ForwardElementwiseRatio) (v kf.BackwardElementwiseRatio)
// The calibrated profile with these kinds' element-wise ratios (PROFILE-elementwise.json): what a calibration at this build would write.
let restNode = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText profilePath)
for entry in restNode.["gpu"].["engine_kernels"].["kind_floors"].AsArray() do
    match withTable.Kernels.KindFloors |> Seq.tryFind (fun k -> k.Kind = entry.["kind"].GetValue<string>()) with
    | Some kf when not (isNull (box kf.ForwardElementwiseRatio)) && not (isNull (box kf.BackwardElementwiseRatio)) ->
        entry.["forward_elementwise_ratio"] <- Text.Json.Nodes.JsonValue.Create(Math.Round(kf.ForwardElementwiseRatio.Value, 4))
        entry.["backward_elementwise_ratio"] <- Text.Json.Nodes.JsonValue.Create(Math.Round(kf.BackwardElementwiseRatio.Value, 4))
    | _ -> ()
let restOut = Path.ChangeExtension(profilePath, null) + "-elementwise.json"
File.WriteAllText(restOut, restNode.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)))
printfn "wrote %s" restOut
let w = without.Kernels
let node = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText profilePath)
let ek = node.["gpu"].["engine_kernels"].AsObject()
let setValue (name: string) (v: float) =
    match ek.[name] with
    | null -> ()
    | f when (f :? Text.Json.Nodes.JsonObject) -> f.["value"] <- Text.Json.Nodes.JsonValue.Create(Math.Round(v, 4))
    | _ -> ek.[name] <- Text.Json.Nodes.JsonValue.Create(Math.Round(v, 4))
setValue "matmul_efficiency" w.MatmulEfficiency.Value
setValue "saved_bytes_gbps" w.SavedBytesGbps.Value
setValue "layer_overhead_us" w.LayerOverheadUs.Value
setValue "backward_ratio" w.BackwardRatio.Value
(match w.BackwardWorkRatio with null -> ek.Remove "backward_work_ratio" |> ignore | r -> setValue "backward_work_ratio" r.Value)
setValue "recompute_ratio" w.RecomputeRatio.Value
ek.Remove "layer_matmul" |> ignore
let out = Path.ChangeExtension(profilePath, null) + "-without.json"
File.WriteAllText(out, node.ToJsonString(Text.Json.JsonSerializerOptions(WriteIndented = true)))
printfn "wrote %s" out
