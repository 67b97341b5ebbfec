#!/usr/bin/env bash
# A/B of two commits' CUDA kernels on the lent GPU machine, in one call and on one machine: lent machines differ by
# up to ~5% run to run, so only alternating rounds of both builds in the same call compare two versions fairly.
#
#   here:        bash tools/cuda/ab_device.sh prepare REF_A REF_B     # git archive of both into ab/a, ab/b
#   GPU machine: bash tools/cuda/ab_device.sh run [ROUNDS] [-- BENCH_ARGS...]
#                (device `run` call with carry ["ab"]: ab/ is git-ignored, so it travels only when carried)
#
# `run` builds bench_w4a16_cuda and cuda_op_check of both trees (CMake, in parallel), runs `cuda_op_check --quick`
# of each (a build that fails it is reported and not timed), then ROUNDS (default 2) alternating rounds of
# `bench_w4a16_cuda BENCH_ARGS` (default: --no-sweep --no-moe-sweep), A then B. Output: $OUT/ab.txt (default ./out).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 3
AB="$ROOT/ab"

case "${1:-}" in
  prepare)
    [ $# -eq 3 ] || { echo "usage: $0 prepare REF_A REF_B" >&2; exit 2; }
    rm -rf "$AB" && mkdir -p "$AB/a" "$AB/b" || exit 3
    for side in a b; do
      ref=$([ $side = a ] && echo "$2" || echo "$3")
      git rev-parse --verify -q "$ref^{commit}" >/dev/null || { echo "not a commit: $ref" >&2; exit 2; }
      git archive "$ref" | tar -x -C "$AB/$side" || exit 3
      echo "$side $(git rev-parse --short "$ref") $ref" >>"$AB/refs.txt"
    done
    cat "$AB/refs.txt"
    echo "now: run the device with carry [\"ab\"]: bash tools/cuda/ab_device.sh run [ROUNDS] [-- BENCH_ARGS...]"
    ;;
  run)
    shift
    ROUNDS=2
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS="$1"; shift; fi
    [ "${1:-}" = "--" ] && shift
    ARGS=("$@")
    [ ${#ARGS[@]} -gt 0 ] || ARGS=(--no-sweep --no-moe-sweep)
    [ -f "$AB/refs.txt" ] || { echo "no ab/refs.txt: run 'prepare' here first and carry ab" >&2; exit 2; }
    OUT="${OUT:-./out}"
    mkdir -p "$OUT"
    LOG="$OUT/ab.txt"
    : >"$LOG"
    {
      echo "date: $(date -u +%FT%TZ)"
      cat "$AB/refs.txt"
      nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>&1
      echo "bench args: ${ARGS[*]}; rounds: $ROUNDS"
    } | tee -a "$LOG"
    build() {
      cmake -S "$AB/$1" -B "$AB/$1/build" -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON -DSTRATA_BUILD_TESTS=OFF \
        -DSTRATA_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS=-march=native >"$AB/$1.build.txt" 2>&1 &&
        cmake --build "$AB/$1/build" -j8 --target bench_w4a16_cuda cuda_op_check >>"$AB/$1.build.txt" 2>&1
    }
    build a &
    pa=$!
    build b &
    pb=$!
    ok_a=1 ok_b=1
    wait $pa || ok_a=0
    wait $pb || ok_b=0
    for side in a b; do
      ok=$([ $side = a ] && echo $ok_a || echo $ok_b)
      if [ "$ok" = 1 ]; then
        "$AB/$side/build/src/kernels/cuda/cuda_op_check" --quick >"$AB/$side.check.txt" 2>&1 || ok=0
        echo "$side: cuda_op_check --quick: $(tail -1 "$AB/$side.check.txt")" | tee -a "$LOG"
      else
        echo "$side: build FAILED: $(tail -3 "$AB/$side.build.txt" | tr '\n' ' ')" | tee -a "$LOG"
      fi
      [ $side = a ] && ok_a=$ok || ok_b=$ok
    done
    for r in $(seq 1 "$ROUNDS"); do
      for side in a b; do
        ok=$([ $side = a ] && echo $ok_a || echo $ok_b)
        [ "$ok" = 1 ] || continue
        echo "== $side ($(grep "^$side " "$AB/refs.txt" | cut -d' ' -f2)), round $r" | tee -a "$LOG"
        # Table rows only, each once (the bench prints its main table twice: as it goes and at the end).
        "$AB/$side/build/src/kernels/cuda/bench_w4a16_cuda" "${ARGS[@]}" 2>&1 | grep -E '^\| ' | awk '!seen[$0]++' |
          tee -a "$LOG"
      done
    done
    [ "$ok_a" = 1 ] && [ "$ok_b" = 1 ]
    ;;
  *)
    sed -n 2,12p "$0" >&2
    exit 2
    ;;
esac
