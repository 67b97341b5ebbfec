#!/usr/bin/env bash
# The main job: build, fetch the default model (SmolLM2-135M-Instruct Q4_1 GGUF, sha256-checked)
# and chat with it. In a terminal: interactive `strata chat`; otherwise one answer to $PROMPT.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target strata
MODEL="$(bash scripts/fetch_model.sh)"
if [ -t 0 ] && [ -t 1 ]; then
  exec ./build/strata chat --model "$MODEL" "$@"
fi
PROMPT="${PROMPT:-What is the capital of France, and what is it famous for?}"
echo "> $PROMPT"
exec ./build/strata run --model "$MODEL" --prompt "$PROMPT" --stats "$@"
