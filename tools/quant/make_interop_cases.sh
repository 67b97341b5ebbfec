#!/usr/bin/env bash
# Builds the cases tools/quant/ct_interop.py checks: `strata quantize` of fixture checkpoints and a
# synthetic one (odd row count, zero/one-signed groups), symmetric and asymmetric, group 32 and
# 128, each with Strata's f32 dequantisation beside it. Not the check itself (that needs PyTorch).
# usage: tools/quant/make_interop_cases.sh STRATA_BINARY OUT_DIR
set -euo pipefail
B=$1; D=$2
F="$(cd "$(dirname "$0")/../../.." && pwd)/shared/fixtures/models"
rm -rf "$D"; mkdir -p "$D"
python3 "$(dirname "$0")/make_synthetic_checkpoint.py" "$D/synthetic_source"
for src in llama qwen3_moe kimi_k2 synthetic; do
  in="$F/$src"; [ "$src" = synthetic ] && in="$D/synthetic_source"
  for g in 32 128; do
    for s in symmetric asymmetric; do
      c="$D/${src}_g${g}_${s}"
      # The tiny MoE fixtures have 64-wide experts: group 128 does not divide them (skipped).
      if "$B" quantize --model "$in" --output "$c/strata" --group-size "$g" --"$s" 2>"$D/log.txt"; then
        "$B" export --input "$c/strata" --output "$c/strata_dequant_f32" --dtype f32 2>>"$D/log.txt"
      else
        echo "skipped $c: $(tail -1 "$D/log.txt")"; rm -rf "$c"
      fi
    done
  done
done
