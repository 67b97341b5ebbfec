#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF, the default model) in Strata next to llama.cpp on the same
# machine, file, settings and thread count:
#  1. perplexity on moby-dick.txt, first 100K tokens, ctx 512 (llama-perplexity's method, which
#     `strata perplexity` implements: chunks of 512, second half of each scored), and whether the
#     two tokenizations agree;
#  2. speed, llama-bench style: pp512 (one 512-token batch) and tg128 (128 single-token steps)
#     on THREADS threads (default 2), as ratios Strata / llama.cpp.
# llama.cpp comes from PyPI: the llama-cpp-python sdist (pip download, built from source here);
# its vendored llama.cpp tools are built with CMake into $WORK by bench/llamacpp/build.sh. Nothing of it is committed.
# Usage: bash bench/smollm2/bench_vs_llamacpp.sh [--quick | --speed-only]
#   --quick: 10 chunks instead of 195; --speed-only: part 2 only (bench/results/smollm2_speed.md)
# Results: a markdown table on stdout (also written to bench/results/smollm2_vs_llamacpp.md).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
THREADS="${THREADS:-2}"
WORK="${WORK:-/tmp/strata-llamacpp}"
LLAMA_CPP_PYTHON="${LLAMA_CPP_PYTHON:-0.3.36}"
TEXT="${TEXT:-$ROOT/../shared/fixtures/corpus/moby-dick.txt}"
CHUNKS=195
SPEED_ONLY=0
[ "${1:-}" = "--quick" ] && CHUNKS=10
[ "${1:-}" = "--speed-only" ] && SPEED_ONLY=1
MODEL="$(bash scripts/fetch_model.sh)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target strata >/dev/null
STRATA="$ROOT/build/strata"

# --- llama.cpp from the PyPI sdist (bench/llamacpp/build.sh: fetch once, build the tools)
BIN="$(WORK="$WORK" LLAMA_CPP_PYTHON="$LLAMA_CPP_PYTHON" bash bench/llamacpp/build.sh llama-perplexity llama-bench llama-tokenize)"

# --- 2. speed (first: the quickest part, and the one a loaded machine disturbs most)
LB=$("$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 -o json 2>/dev/null)
SB=$(OMP_NUM_THREADS="$THREADS" "$STRATA" bench-model --model "$MODEL" --pp 512 --tg 128 --reps 3)
if [ "$SPEED_ONLY" = 1 ]; then
  python3 - "$LB" "$SB" "$THREADS" <<'PY' | tee bench/results/smollm2_speed.md
import json, platform, sys, os
lb = json.loads(sys.argv[1]); sb = json.loads(sys.argv[2])
pp = next(r["avg_ts"] for r in lb if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in lb if r["n_gen"] > 0 and r["n_prompt"] == 0)
print(f"SmolLM2-135M-Instruct Q4_1, {sys.argv[3]} threads, {os.cpu_count()} cpus ({platform.machine()}); llama.cpp = llama-cpp-python sdist {lb[0].get('build_commit','?')}")
print("| metric | llama.cpp | Strata | Strata / llama.cpp |")
print("|---|---:|---:|---:|")
print(f"| prompt processing pp512, tok/s | {pp:.1f} | {sb['pp_tokens_per_s']:.1f} | {sb['pp_tokens_per_s']/pp:.2f}x |")
print(f"| generation tg128, tok/s | {tg:.1f} | {sb['tg_tokens_per_s']:.1f} | {sb['tg_tokens_per_s']/tg:.2f}x |")
PY
  exit 0
fi

# --- 1. tokenization and perplexity
MAXTOK=$((CHUNKS * 512))
"$STRATA" tokenize --tokenizer "$MODEL" --file "$TEXT" > "$WORK/strata_ids.json"
"$BIN/llama-tokenize" -m "$MODEL" -f "$TEXT" --ids --log-disable 2>/dev/null | tail -1 > "$WORK/llama_ids.txt"
SAME_TOKENS=$(python3 - "$WORK/strata_ids.json" "$WORK/llama_ids.txt" "$MAXTOK" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.loads(open(sys.argv[2]).read().strip())
n = int(sys.argv[3])
print(f"{'yes' if a[:n] == b[:n] else 'NO'} ({len(a)} vs {len(b)} tokens in the file)")
PY
)
LPPL=$("$BIN/llama-perplexity" -m "$MODEL" -f "$TEXT" -c 512 -b 512 --chunks "$CHUNKS" -t "$THREADS" 2>&1 |
  sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
SJSON=$(OMP_NUM_THREADS="$THREADS" "$STRATA" perplexity --model "$MODEL" --file "$TEXT" --ctx 512 --max-tokens "$MAXTOK" 2>/dev/null)
SPPL=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['perplexity'])" "$SJSON")


python3 - "$LPPL" "$SPPL" "$LB" "$SB" "$CHUNKS" "$THREADS" "$SAME_TOKENS" <<'PY' | tee bench/results/smollm2_vs_llamacpp.md
import json, platform, sys, os
lppl, sppl = float(sys.argv[1]), float(sys.argv[2])
lb = json.loads(sys.argv[3]); sb = json.loads(sys.argv[4])
pp = next(r["avg_ts"] for r in lb if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in lb if r["n_gen"] > 0 and r["n_prompt"] == 0)
print(f"SmolLM2-135M-Instruct Q4_1, {sys.argv[6]} threads, {os.cpu_count()} cpus ({platform.machine()}); llama.cpp = llama-cpp-python sdist {lb[0].get('build_commit','?')}")
print(f"same tokens as llama.cpp on the perplexity text: {sys.argv[7]}")
print("| metric | llama.cpp | Strata | Strata / llama.cpp |")
print("|---|---:|---:|---:|")
print(f"| perplexity, moby-dick, {sys.argv[5]} chunks of 512 | {lppl:.4f} | {sppl:.4f} | {sppl/lppl:.4f} ({(sppl/lppl-1)*100:+.2f} %) |")
print(f"| prompt processing pp512, tok/s | {pp:.1f} | {sb['pp_tokens_per_s']:.1f} | {sb['pp_tokens_per_s']/pp:.2f}x |")
print(f"| generation tg128, tok/s | {tg:.1f} | {sb['tg_tokens_per_s']:.1f} | {sb['tg_tokens_per_s']/tg:.2f}x |")
PY
