#!/usr/bin/env bash
# The main job on the embedded default: build, then greedy-generate on a fixture model
# (the Kimi-K2-layout INT4 checkpoint) until a real default model lands (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target strata
MODEL="${1:-../shared/fixtures/models/kimi_k2_int4}"
./build/strata generate --model "$MODEL" --input-ids 1,2,3,4,5 --max-tokens 16 --ignore-eos
