#!/usr/bin/env bash
# Issue 24, stage 2: the tables of docs/performance.md against the C loop, quiet, then under one busy loop, then 16
# concurrent best-of-4 requests. Run on a quiet machine only (load well under 1): the load is printed before each part.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="$root/bench/Tilt.Bench/bin/Release/net10.0/Tilt.Bench"
raw="$root/native/build/bin/tilt_rawbatch"
out=${OUT:-$root/docs/results}
part() { echo "== $1: load $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"; }
for p in ${PARTS:-e2e15 e2e110 load15 conc110}; do
  case $p in
    e2e15) part "15M, K 1/16/64, threads 1/all"
      "$bench" e2e --model 15m --k 1,16,64 --tokens 32 --reps 5 --threads 1,all --methods c-loop,raw,generate,best-of-n \
        --rawbatch "$raw" --out "$out/perf-15m.json" --markdown "$out/perf-15m.md" > /dev/null ;;
    e2e110) part "110M, K 1/16/64, threads 1/all"
      "$bench" e2e --model 110m --k 1,16,64 --tokens 16 --reps 5 --threads 1,all --methods c-loop,raw,generate,best-of-n \
        --rawbatch "$raw" --out "$out/perf-110m.json" --markdown "$out/perf-110m.md" > /dev/null ;;
    load15) part "15M under one busy loop"
      "$bench" e2e --model 15m --k 16,64 --tokens 32 --reps 5 --threads all --methods c-loop,generate,best-of-n --load 1 \
        --rawbatch "$raw" --out "$out/perf-15m-load.json" --markdown "$out/perf-15m-load.md" > /dev/null ;;
    conc110) part "110M, 16 concurrent best-of-4"
      "$bench" concurrent --model 110m --clients 16 --strategies bon --tokens 32 --reps 3 \
        --rawbatch "$raw" --out "$out/concurrent-110m.json" --markdown "$out/concurrent-110m.md" > /dev/null ;;
  esac
  part "done $p"
done
