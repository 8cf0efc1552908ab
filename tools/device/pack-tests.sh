#!/usr/bin/env bash
# Packs the engine's tests for the GPU machine, which has PyTorch but no .NET SDK, so `dotnet test` cannot run there: the
# test assembly is published (framework-dependent, the CPU libtorch dropped as tools/device/pack.sh drops it) beside
# xUnit's console runner, and travels xz-compressed. The .NET runtime comes from .device (pack it first with
# tools/device/pack.sh). Carry both folders, then on the GPU machine:
#   bash .device-tests/run-tests.sh -class AiOs.Planner.Engine.Tests.GradientNormsGpuTests …   (xunit.console's arguments)
# AIOS_GPU=1 is set there, so the tests marked [GpuTheory] run instead of being skipped, and CUBLAS_WORKSPACE_CONFIG=:4096:8,
# which cuBLAS needs for the deterministic kernels those tests ask for (CudaDeterminism).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.device-tests}
[ "$out" != .device ] || { echo "error: .device holds the CLI's pack; give the tests another folder (default .device-tests)" >&2; exit 2; }
[ -f .device/dotnet-rt.tar.xz ] || { echo "error: .device/dotnet-rt.tar.xz not found: pack the CLI first (tools/device/pack.sh .device); the tests use its runtime" >&2; exit 2; }
version=2.4.1
runner=${NUGET_PACKAGES:-$HOME/.nuget/packages}/xunit.runner.console/$version/tools/netcoreapp2.0
if [ ! -f "$runner/xunit.console.dll" ]; then
  tmp=$(mktemp -d)
  cat > "$tmp/restore.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup>
  <ItemGroup><PackageDownload Include="xunit.runner.console" Version="[$version]" /></ItemGroup>
</Project>
PROJ
  dotnet restore "$tmp/restore.csproj" -v q
  rm -rf "$tmp"
fi
rm -rf "$out"; mkdir -p "$out"
# ../shared/device/pack.sh publishes and drops the CPU libtorch (PyTorch's CUDA libtorch is used there); the runtime is
# .device's, lent so it packs none of its own, and its run.sh (which would run the test assembly as a program) is replaced.
cp .device/dotnet-rt.tar.xz "$out/"
../shared/device/pack.sh tests/AiOs.Planner.Engine.Tests/AiOs.Planner.Engine.Tests.csproj "$out" >/dev/null
rm -f "$out/dotnet-rt.tar.xz" "$out/run.sh"
rm -rf "$out"/app/coverlet* "$out"/app/Microsoft.CodeCoverage "$out"/app/*.xml
cp "$runner"/xunit.console.dll "$runner"/xunit.console.runtimeconfig.json "$runner"/xunit.console.deps.json \
  "$runner"/xunit.runner.*.dll "$out/app/"
tar -cf - -C "$out" app | xz -6 -T2 > "$out/tests.tar.xz"
rm -rf "$out/app"
stamp=$(sha1sum "$out/tests.tar.xz" | cut -c1-12)
cat > "$out/run-tests.sh" <<RUN
#!/usr/bin/env bash
# Runs the packed engine tests on the GPU machine with PyTorch's CUDA libtorch (written by tools/device/pack-tests.sh).
set -e
here=\$(cd "\$(dirname "\$0")" && pwd)
runtime=\${DEVICE_DIR:-\$here/../.device}/dotnet-rt.tar.xz
[ -x /tmp/dotnet/dotnet ] || { mkdir -p /tmp/dotnet && tar -xJf "\$runtime" -C /tmp/dotnet; }
app=/tmp/aios-tests-$stamp
# Unpacked beside, then renamed: an interrupted unpack never passes for a whole one.
[ -f \$app/app/AiOs.Planner.Engine.Tests.dll ] || { rm -rf \$app.part && mkdir -p \$app.part && tar -xJf "\$here/tests.tar.xz" -C \$app.part && rm -rf \$app && mv \$app.part \$app; }
torchlib=\$(python3 -c 'import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin),"lib"))')
export LD_LIBRARY_PATH="\$torchlib:\${LD_LIBRARY_PATH:-}" DOTNET_ROOT=/tmp/dotnet DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_ROLL_FORWARD=Major \\
  DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 AIOS_GPU=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
cd \$app/app
exec /tmp/dotnet/dotnet xunit.console.dll AiOs.Planner.Engine.Tests.dll -noshadow "\$@"
RUN
chmod +x "$out/run-tests.sh"
du -sh "$out" | sed 's/^/packed: /'
