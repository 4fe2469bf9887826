#!/usr/bin/env bash
# The issue-30 check, as a service would see it: `tilt serve` on MODEL, ROUNDS rounds of CLIENTS concurrent best-of-4
# requests (32 tokens, one curl each, all at once), wall time per round. Before the dense sequence ids, rounds 2, 4, ...
# ran 3-4x slower than the first (the free list handed ids back scrambled and llama.cpp split every decode at each gap).
# Usage: bench/scripts/server-rounds.sh TILT_BINARY MODEL [ROUNDS=5] [CLIENTS=16] [PORT=18430]
# TILT_BINARY is a built `tilt` (src/Cli/bin/Release/net10.0/tilt); loopback only; bounded in count and time.
set -euo pipefail
tilt=$1; model=$2; rounds=${3:-5}; clients=${4:-16}; port=${5:-18430}
"$tilt" serve --model "$model" --host 127.0.0.1 --port "$port" >/tmp/server-rounds.$port.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1 # polling a process we do not control: the health endpoint is the synchronization
done
body='{"prompt":"Once upon a time","max_tokens":32,"seed":SEED,"alignment":{"strategy":"bon","n":4,"reward":"length:1000"}}'
first=""
for r in $(seq 1 "$rounds"); do
    start=$(date +%s.%N)
    pids=()
    for c in $(seq 1 "$clients"); do
        curl -sf --max-time 600 "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
            -d "${body/SEED/$((r * 100 + c))}" -o /dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t=$(echo "$(date +%s.%N) - $start" | bc -l)
    [ -z "$first" ] && first=$t
    runs=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^tilt_decode_id_runs /{r=$2} /^tilt_decodes /{d=$2} END{if (d>0) printf "%.2f", r/d; else printf "n/a"}')
    printf 'round %d: %.2f s (%.2fx the first), id runs per decode so far: %s\n' "$r" "$t" "$(echo "$t / $first" | bc -l)" "$runs"
done
