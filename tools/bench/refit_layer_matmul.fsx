// Refits a calibrate-gpu run's engine layer passes with and without the layer products' shape rates (engine_kernels.layer_matmul),
// from the grid log's "pass …" lines, and writes PROFILE-without.json: the calibrated profile with the fit taken against the large
// rate alone, so both fits can price the same runs (tools/bench/repredict.py).
//   dotnet build AiOs.Planner.sln -c Release && dotnet fsi tools/bench/refit_layer_matmul.fsx GRID_LOG CALIBRATED_JSON
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/AiOs.Planner.Core.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/AiOs.Planner.Calibration.dll"
#r "../../src/AiOs.Planner.Cli/bin/Release/net10.0/MathNet.Numerics.dll"
open System
open System.IO
open System.Text.RegularExpressions
open AiOs.Planner.Calibration.Compute
open AiOs.Planner.Hardware
open AiOs.Planner.Descriptions

let args = fsi.CommandLineArgs |> Array.skip 1
let log, profilePath = args.[0], args.[1]
let inv = Globalization.CultureInfo.InvariantCulture
let passRe = Regex(@"pass (\w+) hidden (\d+) tokens (\d+) flops (\S+) saved_bytes (\S+) matmul_tflops (\S+) seconds (\S+) fitted (\S+)")
let passes =
    File.ReadLines log |> Seq.choose (fun l ->
        let m = passRe.Match l
        if not m.Success then None else
        let g (i: int) = m.Groups.[i].Value
        Some (LayerTiming(Double.Parse(g 4, inv), Double.Parse(g 5, inv), int (g 2), (g 1 = "backward"), Double.Parse(g 7, inv), g 1, int64 (g 3))))
    |> Seq.toList
printfn "%d passes" passes.Length
let hw = AiOs.Planner.Hardware.ProfileCatalog.Default.Load profilePath
let gpu = hw.Gpu
let k = gpu.EngineKernels
let timings table =
    EngineKernelTimings(ResizeArray passes, k.LayerLaunchFloorUs.Value * 1e-6, 1e-3, 100_000_000L,
        gpu.MatmulRate(AiOs.Planner.Settings.Precision.Bf16), "refit", k.LayerLaunchFloorUs.Value * 1e-6,
        (match k.BackwardLaunchFloorUs with null -> nan | b -> b.Value * 1e-6), AiOs.Planner.Units.Bandwidth.FromGBps(gpu.MemoryBandwidthGbps.Value),
        null, null, null, table, AiOs.Planner.Settings.Precision.Bf16)
let report name (c: EngineKernelCalibration) =
    printfn "%s: efficiency %.4f, saved %.1f GB/s, overhead %.1f us, backward ratio %.3f, work ratio %s, recompute %.3f; RMS %.2f%%, terms %s"
        name c.Kernels.MatmulEfficiency.Value c.Kernels.SavedBytesGbps.Value c.Kernels.LayerOverheadUs.Value c.Kernels.BackwardRatio.Value
        (match c.Kernels.BackwardWorkRatio with null -> "-" | w -> sprintf "%.3f" w.Value) c.Kernels.RecomputeRatio.Value
        (100.0 * c.Fit.RmsRelativeError) (String.Join(", ", c.Fit.Terms))
let withTable = EngineKernelFit.Fit(timings k.LayerMatmul, "refit")
let without = EngineKernelFit.Fit(timings null, "refit")
report "with layer_matmul" withTable
report "without" without
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
