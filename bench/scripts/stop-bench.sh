#!/usr/bin/env bash
# Stop sequences, wall time (docs/performance.md "Stop sequences"): the same requests with and without a stop that fires
# early, interleaved, REPS repetitions, on MODEL (default: the 110M synthetic model; stories260K too when given).
# Usage: bench/scripts/stop-bench.sh TILT_BINARY [MODEL...]   Run on a quiet machine (prints `uptime`).
set -euo pipefail
tilt=$1; shift
models=("$@"); [ ${#models[@]} -eq 0 ] && models=(~/.cache/tilt/models/110m-f16-v32000-s1.gguf)
reps=${REPS:-3}; stop=${STOP:-.}  # synthetic models write random letters: STOP=x fires within ~10 tokens
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
for model in "${models[@]}"; do
    echo "== $(basename "$model"); $(uptime)"
    for r in $(seq 1 "$reps"); do
        g0=$(secs "$tilt" generate --model "$model" --n 16 --max-tokens 128 --seed 1)
        g1=$(secs "$tilt" generate --model "$model" --n 16 --max-tokens 128 --seed 1 --stop "$stop")
        b0=$(secs "$tilt" align --model "$model" --strategy bon --n 16 --max-tokens 64 --seed 1 --samples 2 --reward length:1000)
        b1=$(secs "$tilt" align --model "$model" --strategy bon --n 16 --max-tokens 64 --seed 1 --samples 2 --reward length:1000 --stop "$stop")
        printf 'rep %d: generate n16 x128: %.2f s -> %.2f s with --stop %s; best-of-16 x64 (2 outputs): %.2f s -> %.2f s\n' "$r" "$g0" "$g1" "$stop" "$b0" "$b1"
    done
    echo "tokens: generate $("$tilt" generate --model "$model" --n 16 --max-tokens 128 --seed 1 --json | jq -s 'map(.tokens | length) | add') -> $("$tilt" generate --model "$model" --n 16 --max-tokens 128 --seed 1 --json --stop "$stop" | jq -s 'map(.tokens | length) | add');" \
         "best-of-16 evaluated $("$tilt" align --model "$model" --strategy bon --n 16 --max-tokens 64 --seed 1 --samples 2 --reward length:1000 --json | jq -s 'map(.tokensEvaluated) | add') -> $("$tilt" align --model "$model" --strategy bon --n 16 --max-tokens 64 --seed 1 --samples 2 --reward length:1000 --json --stop "$stop" | jq -s 'map(.tokensEvaluated) | add')"
done
