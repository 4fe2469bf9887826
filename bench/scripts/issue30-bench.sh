#!/usr/bin/env bash
# Dense sequence ids, measured (docs/performance.md "Dense sequence ids"): repeated server rounds before (OLD_TILT, a
# build of the commit before the fix) and after (NEW_TILT), interleaved per model; then the fragmenting workload with
# compaction on/off against the C loop (RAW, ../shared/bench/rawbatch built against the same libraries).
# Usage: bench/scripts/issue30-bench.sh OLD_TILT NEW_TILT RAW [OUT_DIR]
# Run on a quiet machine: it prints `uptime` before each part.
set -euo pipefail
old=$1; new=$2; raw=$3; out=${4:-/tmp/issue30}
mkdir -p "$out"
here=$(cd "$(dirname "$0")/../.." && pwd)
models=~/.cache/tilt/models
for m in 15m 110m; do
    model="$models/$m-f16-v32000-s1.gguf"
    for build in old new; do
        bin=$old; [ "$build" = new ] && bin=$new
        echo "== server rounds, $m, $build build; $(uptime)"
        "$here/bench/scripts/server-rounds.sh" "$bin" "$model" 5 16 | tee "$out/rounds-$m-$build.txt"
    done
done
echo "== fragment 15m; $(uptime)"
dotnet "$here/bench/Tilt.Bench/bin/Release/net10.0/Tilt.Bench.dll" fragment --model 15m --clients 16 --requests 64 --reps 3 --raw "$raw" | tee "$out/fragment-15m.md"
echo "== fragment 110m; $(uptime)"
dotnet "$here/bench/Tilt.Bench/bin/Release/net10.0/Tilt.Bench.dll" fragment --model 110m --clients 16 --requests 48 --reps 2 --raw "$raw" | tee "$out/fragment-110m.md"
echo "== done; $(uptime)"
