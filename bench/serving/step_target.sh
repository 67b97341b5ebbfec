#!/usr/bin/env bash
# A/B of `strata serve --step-target-ms` (the chunked scheduler's step-time cap on prefill tokens while sequences
# decode) on the default model at closed-loop concurrency C, alternating runs so that drift on a shared box hits
# every setting alike. Prints a markdown table; raw JSON in bench/results/step_target/.
#
# Usage: bash bench/serving/step_target.sh [TARGET_MS ...]   (default: 0 150 250; 0 = off)
# Env: C (4), N (16 requests per run), ROUNDS (2), THREADS (2), STRATA_BIN (default build/strata, built if absent).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
C="${C:-4}" N="${N:-16}" ROUNDS="${ROUNDS:-2}" THREADS="${THREADS:-2}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(0 150 250)
MODEL="$(bash scripts/fetch_model.sh)"
STRATA="${STRATA_BIN:-build/strata}"
if [ ! -x "$STRATA" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j2 --target strata >/dev/null
fi
RES="$ROOT/bench/results/step_target"
mkdir -p "$RES"
LOG="$(mktemp -d /tmp/strata-step-target.XXXXXX)"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    port=$((20000 + RANDOM % 20000))
    env OMP_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=passive "$STRATA" serve --model "$MODEL" --ctx 8192 \
      --request-timeout 600 --quiet --port "$port" --step-target-ms "$t" >"$LOG/serve-$t-$round.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
    python3 bench/serving/loadgen.py --url "http://127.0.0.1:$port" --label "target $t ms, round $round" \
      --prompt-tokens 256 --max-tokens 64 --ignore-eos --warmup 2 -n "$N" -c "$C" --seed 4 \
      --json-out "$RES/step-target-$t-$round.json" >"$LOG/loadgen-$t-$round.log" 2>&1
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
done
python3 - "$RES" "$ROUNDS" "${TARGETS[@]}" <<'PY'
import json, sys
res, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| --step-target-ms | round | TTFT p50/p99 ms | TBT p50/p90/p99/max ms | out tok/s | errors |")
print("|---|---|---:|---:|---:|---:|")
for t in targets:
    for r in range(1, rounds + 1):
        s = json.load(open(f"{res}/step-target-{t}-{r}.json"))["summary"]
        a, b = s["ttft_ms"], s["tbt_ms"]
        print(f"| {t if t != '0' else '0 (off)'} | {r} | {a['p50']:.0f}/{a['p99']:.0f} | "
              f"{b['p50']:.0f}/{b['p90']:.0f}/{b['p99']:.0f}/{b['max']:.0f} | {s['output_tokens_per_s']:.1f} | {s['errors']} |")
PY
