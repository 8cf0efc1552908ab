#!/usr/bin/env bash
# Packs the CLI for the lent GPU machine within its 64 MiB working-tree limit: ../shared/device/pack.sh publishes it
# (framework-dependent, PyTorch's CUDA libtorch used there), then the app and a trimmed .NET runtime (no debugger,
# alternative-GC or ASP.NET Core libraries) travel xz-compressed and run.sh unpacks them there once per packed build.
#   tools/device/pack.sh [.device]      then: bash .device/run.sh <aios args>
#   PROJECT=tests/AiOs.Planner.Benchmarks/AiOs.Planner.Benchmarks.csproj tools/device/pack.sh .device-bench   (another program)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.device}
../shared/device/pack.sh "${PROJECT:-src/AiOs.Planner.Cli/AiOs.Planner.Cli.csproj}" "$out" >/dev/null
rm -f "$out"/app/*.dbg "$out"/app/*.xml
dll=$(basename "$(ls "$out"/app/*.runtimeconfig.json | head -1)" .runtimeconfig.json).dll
# The ASP.NET Core framework (8 MiB packed) serves only `aios serve`, which the GPU machine never runs: the packed app
# starts without it, and the runtime below leaves it out, so the tracked tree plus the pack stay under 64 MiB.
python3 - "$out/app/${dll%.dll}.runtimeconfig.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
options = config["runtimeOptions"]
options["frameworks"] = [f for f in options.get("frameworks", []) if f["name"] != "Microsoft.AspNetCore.App"]
json.dump(config, open(path, "w"), indent=2)
PY
tar -cf - -C "$out" app | xz -6 -T2 > "$out/app.tar.xz"
rm -rf "$out/app"
if [ ! -f "$out/.runtime-lean" ]; then
  root=$(dirname "$(readlink -f "$(command -v dotnet)")")
  tar -C "$root" --exclude='libmscordaccore.so' --exclude='libmscordbi.so' --exclude='createdump' --exclude='libclrgc*.so' \
    --exclude='libcoreclrtraceptprovider.so' -cf - dotnet host shared/Microsoft.NETCore.App | xz -9e -T2 > "$out/dotnet-rt.tar.xz"
  touch "$out/.runtime-lean"
fi
stamp=$(sha1sum "$out/app.tar.xz" | cut -c1-12)
cat > "$out/run.sh" <<RUN
#!/usr/bin/env bash
# Runs the packed program ($dll) on the GPU machine with PyTorch's CUDA libtorch (written by tools/device/pack.sh).
set -e
here=\$(cd "\$(dirname "\$0")" && pwd)
[ -x /tmp/dotnet/dotnet ] || { mkdir -p /tmp/dotnet && tar -xJf "\$here/dotnet-rt.tar.xz" -C /tmp/dotnet; }
app=/tmp/aios-app-$stamp
# Unpacked beside, then renamed: an interrupted unpack never passes for a whole one.
[ -f \$app/app/$dll ] || { rm -rf \$app.part && mkdir -p \$app.part && tar -xJf "\$here/app.tar.xz" -C \$app.part && rm -rf \$app && mv \$app.part \$app; }
# torch's folder found without importing torch: an import loads its CUDA libraries (seconds of work), which ran inside the
# process's start-up figures, since exec keeps the process (and its launch time) that this script began as.
torchlib=\$(python3 -c 'import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin),"lib"))')
export LD_LIBRARY_PATH="\$torchlib:\${LD_LIBRARY_PATH:-}" DOTNET_ROOT=/tmp/dotnet DOTNET_CLI_TELEMETRY_OPTOUT=1
exec /tmp/dotnet/dotnet \$app/app/$dll "\$@"
RUN
chmod +x "$out/run.sh"
du -sh "$out" | sed 's/^/packed: /'
