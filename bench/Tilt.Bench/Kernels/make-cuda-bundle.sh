#!/usr/bin/env bash
# Builds artifacts/cuda/bundle.tar.xz: the cuda-parity command (CudaParity.cs) with the .NET runtime beside it, for a
# GPU machine that has no .NET SDK (~27 MB). On the GPU machine:
#   mkdir -p /tmp/t && tar -xJf artifacts/cuda/bundle.tar.xz -C /tmp/t
#   DOTNET_ROOT=/tmp/t/dotnet /tmp/t/dotnet/dotnet /tmp/t/app/Tilt.Bench.dll [--quick] [--no-timing]
# Exit code: 0 pass, 1 a parity failure, 2 no usable CUDA device.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
# Built outside the repository: a second Tilt.Bench project under it would confuse BenchmarkDotNet.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
runtime="$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)"
mkdir -p "$root/artifacts/cuda"
# The runner is named Tilt.Bench so that Tilt.Kernels' InternalsVisibleTo lets it compare the device's noise bits.
cat > "$work/CudaParityRunner.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <AssemblyName>Tilt.Bench</AssemblyName>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <InvariantGlobalization>true</InvariantGlobalization>
  </PropertyGroup>
  <ItemGroup>
    <ProjectReference Include="$root/src/Kernels/Tilt.Kernels.csproj" />
    <Compile Include="$root/bench/Tilt.Bench/Kernels/CudaParity.cs" />
  </ItemGroup>
</Project>
PROJ
echo 'return Tilt.Bench.Kernels.CudaParity.Run(args);' > "$work/Program.cs"
dotnet publish "$work/CudaParityRunner.csproj" -c Release -o "$work/stage/app"
mkdir -p "$work/stage/dotnet/shared/Microsoft.NETCore.App"
cp -r "$dotnet_root/dotnet" "$dotnet_root/host" "$work/stage/dotnet/"
cp -r "$runtime" "$work/stage/dotnet/shared/Microsoft.NETCore.App/"
tar -C "$work/stage" -cJf "$root/artifacts/cuda/bundle.tar.xz" dotnet app
ls -la "$root/artifacts/cuda/bundle.tar.xz"
