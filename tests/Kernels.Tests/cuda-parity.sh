#!/usr/bin/env bash
# CUDA parity suite for the step kernels. Needs a CUDA GPU and the .NET SDK.
#  1. The ILGPU parity tests (tokens, log-probs, KL, value heads, noise bits against the float64 reference and the
#     SIMD CPU backend) on the first CUDA device: TILT_REQUIRE_CUDA=1 makes a missing device a FAILURE, never a skip.
#  2. The console parity + timing run at production shapes (K up to 256, vocab up to 128256).
# Without TILT_REQUIRE_CUDA (CI) the same tests run on ILGPU's CPU accelerator as part of `dotnet test`.
# On a GPU machine without the SDK use bench/Tilt.Bench/Kernels/make-cuda-bundle.sh instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
TILT_REQUIRE_CUDA=1 dotnet test tests/Kernels.Tests -c Release --filter "FullyQualifiedName~IlgpuParityTests" \
  --logger "console;verbosity=normal"
dotnet run -c Release --project bench/Tilt.Bench -- cuda-parity "$@"
