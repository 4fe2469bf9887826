#!/usr/bin/env bash
# Issue 24: every timing table of docs/performance.md that compares the engine with a baseline, regenerated with the
# engine's default OpenMP setting (GOMP_SPINCOUNT=1000 unless the caller sets one). Run on a quiet machine only: the
# load average is printed before each part; nothing else may run meanwhile. PARTS picks parts; OUT the output folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="$root/bench/Tilt.Bench/bin/Release/net10.0/Tilt.Bench"
tilt="$root/src/Cli/bin/Release/net10.0/tilt"
raw="$root/native/build/bin/tilt_rawbatch"
out=${OUT:-$root/docs/results}
m110="${TILT_CACHE:-$HOME/.cache/tilt}/models/110m-f16-v32000-s1.gguf"
# Before each part: wait (at most 3 minutes) for the previous part's load to decay below 1, then print it.
part() {
  for _ in $(seq 36); do awk '{exit !($1 < 1.0)}' /proc/loadavg && break; sleep 5; done
  echo "== $1: load $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"
}
for p in ${PARTS:-e2e110 e2e15 load15 conc110 serve rejection}; do
  case $p in
    e2e110) part "110M, K 1/16/64, threads 1/all"
      "$bench" e2e --model 110m --k 1,16,64 --tokens 16 --reps 5 --best-of 2 --threads 1,all --methods c-loop,raw,generate,best-of-n \
        --rawbatch "$raw" --out "$out/perf-110m.json" --markdown "$out/perf-110m.md" > /dev/null ;;
    e2e15) part "15M, K 1/16/64, threads 1/all"
      "$bench" e2e --model 15m --k 1,16,64 --tokens 32 --reps 5 --best-of 2 --threads 1,all --methods c-loop,raw,generate,best-of-n \
        --rawbatch "$raw" --out "$out/perf-15m.json" --markdown "$out/perf-15m.md" > /dev/null ;;
    load15) part "15M under one busy loop"
      "$bench" e2e --model 15m --k 16,64 --tokens 32 --reps 5 --threads all --methods c-loop,generate,best-of-n --load 1 \
        --rawbatch "$raw" --out "$out/perf-15m-load.json" --markdown "$out/perf-15m-load.md" > /dev/null ;;
    conc110) part "110M, 16 concurrent best-of-4"
      "$bench" concurrent --model 110m --clients 16 --strategies bon --tokens 32 --reps 5 \
        --rawbatch "$raw" --out "$out/concurrent-110m.json" --markdown "$out/concurrent-110m.md" > /dev/null ;;
    serve) part "HTTP against in-process, stories260K"
      "$bench" serve-load --clients 1,8,32 --requests 32 --reps 3 --markdown "$out/serve-load.md" > /dev/null ;;
    rejection) part "early rejection against best-of-16, 110M"
      for seed in 1 2; do
        for s in "bon" "rejection --alpha 0.5 --every 8"; do
          start=$(date +%s.%N)
          line=$("$tilt" align --model "$m110" --strategy $s --n 16 --max-tokens 32 --reward length:1000 --seed $seed --json)
          end=$(date +%s.%N)
          echo "$s seed $seed: process $(echo "$end - $start" | bc) s; $(echo "$line" | jq -c '{tokensEvaluated, ms: .timings}')"
        done
      done | tee "$out/rejection-110m.txt" ;;
  esac
  part "done $p"
done
