#!/usr/bin/env bash
# Issue 24, stage 1: which OpenMP wait setting and how many step-kernel workers, quiet and under one busy loop.
# 15M, K = 16 and 64, threads = all cores, the C loop (default environment) beside the engine in every repetition.
# Run on a quiet machine only (load well under 1); prints the load before each configuration.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bench="$root/bench/Tilt.Bench/bin/Release/net10.0/Tilt.Bench"
raw="$root/native/build/bin/tilt_rawbatch"
out=${OUT:-/tmp/issue24}
mkdir -p "$out"
reps=${REPS:-3}
run() { # name, extra harness args..., env via KT (kernel threads)
  local name=$1; shift
  echo "== $name: load $(cut -d' ' -f1-3 /proc/loadavg) at $(date +%T)"
  env ${KT:+TILT_KERNEL_THREADS=$KT} "$bench" e2e --model 15m --k 16,64 --tokens 32 --reps "$reps" --threads all \
    --methods c-loop,generate --rawbatch "$raw" --markdown "$out/$name.md" "$@" > /dev/null 2> "$out/$name.log"
  grep -E "^\| (16|64) " "$out/$name.md" | cut -d'|' -f2-10
}
for cfg in ${CONFIGS:-passive spin1000 spin10000 spin100000 spin10000-kt1 passive-kt1}; do
  case $cfg in
    passive) KT= run $cfg --engine-omp OMP_WAIT_POLICY=PASSIVE ;;
    passive-kt1) KT=1 run $cfg --engine-omp OMP_WAIT_POLICY=PASSIVE ;;
    spin*-kt1) n=${cfg#spin}; n=${n%-kt1}; KT=1 run $cfg --engine-omp GOMP_SPINCOUNT=$n ;;
    spin*) KT= run $cfg --engine-omp GOMP_SPINCOUNT=${cfg#spin} ;;
    load-*) c=${cfg#load-}; KT= run $cfg --load 1 --engine-omp $(case $c in passive) echo OMP_WAIT_POLICY=PASSIVE;; *) echo GOMP_SPINCOUNT=${c#spin};; esac) ;;
  esac
done
