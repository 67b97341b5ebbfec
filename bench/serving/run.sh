#!/usr/bin/env bash
# Serving benchmark: Strata (`strata serve`) next to llama.cpp's llama-server on the same GGUF
# (SmolLM2-135M-Instruct Q4_1, the default model), same thread count and context, greedy, raw-text
# continuation prompts on /v1/completions (streamed), measured by bench/serving/loadgen.py at
# fixed concurrency 1, 2, 4 and at a Poisson rate; then Strata's chunked vs layered prefill on an
# MoE fixture (bench/serving/mixed.py: long decodes running while long prompts arrive).
# Writes bench/results/$RESULTS_NAME.md (default serving; raw JSON under bench/results/$RESULTS_NAME/).
#
# Usage: bash bench/serving/run.sh [--quick] [--no-peer] [--no-moe]
#   --quick: fewer requests per point (smoke run)
# Env: THREADS (2), CTX (8192), PROMPT_TOKENS (256), MAX_TOKENS (64), CONCURRENCY ("1 2 4"),
#      RATE (Poisson req/s; auto: half the slower server's req/s at c=1; empty: no Poisson point),
#      N_PER_SLOT (requests per concurrency slot, 4; the Poisson point sends 3x that),
#      RESULTS_NAME (serving), OMP_WAIT (OMP_WAIT_POLICY of both servers; "default" leaves it unset; passive: both use libgomp; spinning workers
#      starve the HTTP threads and collapse under other load on a small shared box), MOE_MODEL (qwen3_moe_int4 fixture),
#      JOBS (build jobs, 2), WORK (llama.cpp build dir, /tmp/strata-llamacpp), STRATA_BIN (use this binary, no build),
#      STEP_TARGET_MS (Strata's --step-target-ms on the SmolLM2 server; 0/empty: off).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-2}"
CTX="${CTX:-8192}"
PROMPT_TOKENS="${PROMPT_TOKENS:-256}"
MAX_TOKENS="${MAX_TOKENS:-64}"
CONCURRENCY="${CONCURRENCY:-1 2 4}"
RATE="${RATE-auto}"
N_PER_SLOT="${N_PER_SLOT:-4}"
OMP_WAIT="${OMP_WAIT:-passive}"
if [ "$OMP_WAIT" = default ]; then OMPENV=(-u OMP_WAIT_POLICY); else OMPENV=(OMP_WAIT_POLICY="$OMP_WAIT"); fi
FIXTURES="${STRATA_FIXTURES_DIR:-$ROOT/../shared/fixtures}"
MOE_MODEL="${MOE_MODEL:-$FIXTURES/models/qwen3_moe_int4}"
JOBS="${JOBS:-2}"
export WORK="${WORK:-/tmp/strata-llamacpp}"
QUICK=0 PEER=1 MOE=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-peer) PEER=0 ;;
    --no-moe) MOE=0 ;;
    *) echo "usage: $0 [--quick] [--no-peer] [--no-moe]" >&2; exit 2 ;;
  esac
done
[ "$QUICK" = 1 ] && N_PER_SLOT=2
NAME="${RESULTS_NAME:-serving}"
RES="$ROOT/bench/results/$NAME"
mkdir -p "$RES"
rm -f "$RES"/strata-*.json "$RES"/llama-server-*.json "$RES"/strata-metrics.txt
[ "$MOE" = 1 ] && rm -f "$RES"/moe-*.json
LOGDIR="$(mktemp -d /tmp/strata-serving.XXXXXX)"
T_START=$(date +%s)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- builds and model
MODEL="$(bash scripts/fetch_model.sh)"
if [ -n "${STRATA_BIN:-}" ]; then
  STRATA="$STRATA_BIN"  # a prebuilt binary (no build)
else
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$JOBS" --target strata >/dev/null
  STRATA="$ROOT/build/strata"
fi
if [ "$PEER" = 1 ]; then
  LBIN="$(JOBS="$JOBS" bash bench/llamacpp/build.sh llama-server)"
  LLAMA_VERSION="$("$LBIN/llama-server" --version 2>&1 | tr '\n' ' ' | sed 's/  */ /g')"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {  # url pid log
  for _ in $(seq 1 600); do
    if python3 -c 'import sys,urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' "$1/health" 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "server died:" >&2; tail -20 "$3" >&2; exit 1; fi
    sleep 0.2
  done
  echo "server never became healthy: $1" >&2; tail -20 "$3" >&2; exit 1
}
stop() {  # pid
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

STRATA_CMD=(env "${OMPENV[@]}" OMP_NUM_THREADS="$THREADS" "$STRATA" serve --model "$MODEL"
            --ctx "$CTX" --request-timeout 600 --quiet)
if [ "${STEP_TARGET_MS:-0}" != 0 ]; then STRATA_CMD+=(--step-target-ms "$STEP_TARGET_MS"); export STEP_TARGET_MS; fi
LLAMA_CMD=(env "${OMPENV[@]}" "${LBIN:-.}/llama-server" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -c "$CTX" -np 4 --kv-unified --no-webui
           --log-disable)
COMMON=(--prompt-tokens "$PROMPT_TOKENS" --max-tokens "$MAX_TOKENS" --ignore-eos --warmup 2)
echo "strata-serving logs: $LOGDIR" >&2
grep "^moe\|mixed.py" "$RES/commands.txt" > "$LOGDIR/moe-commands.txt" 2>/dev/null || true
{
  echo "# Paths relative to the repo root; MODEL=\$(bash scripts/fetch_model.sh), LBIN=\$(bash bench/llamacpp/build.sh llama-server)"
  echo "# (the llama.cpp build directory), STRATA = build/strata unless STRATA_BIN was given."
} > "$RES/commands.txt"
# Appends a command line to commands.txt in the portable form above (no machine-specific paths).
record() {
  local line="$*"
  line="${line//"$MODEL"/\$MODEL}"
  [ -n "${LBIN:-}" ] && line="${line//"$LBIN"/\$LBIN}"
  line="${line//"$ROOT/"/}"
  echo "$line" >> "$RES/commands.txt"
}
[ "$MOE" = 1 ] || cat "$LOGDIR/moe-commands.txt" >> "$RES/commands.txt"

# --- part 1: Strata vs llama-server, both servers up, load points alternated between them
SP=$(free_port)
"${STRATA_CMD[@]}" --port "$SP" > "$LOGDIR/strata.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
wait_health "http://127.0.0.1:$SP" "$SPID" "$LOGDIR/strata.log"
record "strata: ${STRATA_CMD[*]} --port $SP"
if [ "$PEER" = 1 ]; then
  LP=$(free_port)
  "${LLAMA_CMD[@]}" --port "$LP" > "$LOGDIR/llama.log" 2>&1 &
  LPID=$!; PIDS+=("$LPID")
  wait_health "http://127.0.0.1:$LP" "$LPID" "$LOGDIR/llama.log"
  record "llama-server: ${LLAMA_CMD[*]} --port $LP"
fi
run_point() {  # name url tag loadargs...
  local name=$1 url=$2 tag=$3; shift 3
  local la; la=$(loadavg)
  record "python3 bench/serving/loadgen.py --url $url --label $name ${COMMON[*]} $* --json-out $RES/$name-$tag.json"
  python3 bench/serving/loadgen.py --url "$url" --label "$name" "${COMMON[@]}" "$@" --json-out "$RES/$name-$tag.json" --md-row
  python3 - "$RES/$name-$tag.json" "$la" "$(loadavg)" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["summary"]["loadavg_before"] = sys.argv[2]; d["summary"]["loadavg_after"] = sys.argv[3]
json.dump(d, open(p, "w"), indent=1)
PY
}
for c in $CONCURRENCY; do
  n=$((c * N_PER_SLOT))
  run_point strata "http://127.0.0.1:$SP" "c$c" -n "$n" -c "$c" --seed "$c"
  [ "$PEER" = 1 ] && run_point llama-server "http://127.0.0.1:$LP" "c$c" -n "$n" -c "$c" --seed "$c"
done
if [ "$RATE" = auto ]; then
  # Below capacity on this machine today: half the slower server's closed-loop rate at c=1.
  RATE=$(python3 - "$RES" <<'PY'
import glob, json, sys
r = [json.load(open(p))["summary"]["requests_per_s"] for p in glob.glob(sys.argv[1] + "/*-c1.json")]
r = [x for x in r if x]
print(f"{0.5 * min(r):.3f}" if r else "0.2")
PY
)
fi
if [ -n "$RATE" ]; then
  n=$((3 * N_PER_SLOT))
  run_point strata "http://127.0.0.1:$SP" "poisson" -n "$n" --rate "$RATE" --seed 99
  [ "$PEER" = 1 ] && run_point llama-server "http://127.0.0.1:$LP" "poisson" -n "$n" --rate "$RATE" --seed 99
fi
python3 -c 'import sys,urllib.request; open(sys.argv[2],"wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
  "http://127.0.0.1:$SP/metrics" "$RES/strata-metrics.txt"
stop "$SPID"
[ "$PEER" = 1 ] && stop "$LPID"

# --- part 2: chunked vs layered prefill on an MoE fixture (tiny random model: timings show
# scheduling overhead, the expert-byte counters are the meaningful part)
if [ "$MOE" = 1 ]; then
  for policy in chunked layered; do
    MP=$(free_port)
    MOE_CMD=(env "${OMPENV[@]}" OMP_NUM_THREADS="$THREADS" "$STRATA" serve --model "$MOE_MODEL"
             --scheduler "$policy" --ctx 32768 --request-timeout 600 --quiet)
    "${MOE_CMD[@]}" --port "$MP" > "$LOGDIR/moe-$policy.log" 2>&1 &
    MPID=$!; PIDS+=("$MPID")
    wait_health "http://127.0.0.1:$MP" "$MPID" "$LOGDIR/moe-$policy.log"
    record "moe $policy: ${MOE_CMD[*]} --port $MP"
    for scen in mixed prefill; do
      if [ "$scen" = mixed ]; then DEC=3; else DEC=0; fi
      MIX=(--scenario "$scen" --decoders "$DEC" --decode-tokens "${MOE_DECODE_TOKENS:-512}" --long-prompts 4
           --long-chars "${MOE_LONG_CHARS:-4000}" --long-max-tokens 4 --interval 0.3 --seed "$DEC")
      F="$RES/moe-$scen-$policy.json"
      record "python3 bench/serving/mixed.py --url http://127.0.0.1:$MP --label $policy ${MIX[*]} --json-out $F"
      la=$(loadavg)
      python3 bench/serving/mixed.py --url "http://127.0.0.1:$MP" --label "$policy" "${MIX[@]}" --json-out "$F" --md-row
      python3 - "$F" "$la" "$(loadavg)" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["result"]["loadavg_before"] = sys.argv[2]; d["result"]["loadavg_after"] = sys.argv[3]
json.dump(d, open(p, "w"), indent=1)
PY
    done
    stop "$MPID"
  done
fi

# --- report
python3 bench/serving/report.py --results "$RES" --out "bench/results/$NAME.md" \
  --model "$MODEL" --moe-model "$MOE_MODEL" --threads "$THREADS" --ctx "$CTX" \
  --llama-version "${LLAMA_VERSION:-not run}" --omp-wait "$OMP_WAIT" \
  --runtime-s "$(( $(date +%s) - T_START ))"
cat "bench/results/$NAME.md"
