#!/usr/bin/env bash
# A/B of two to four commits' CUDA kernels on the lent GPU machine, in one call and on one machine: lent machines
# differ by up to ~5% run to run, so only alternating rounds of the builds in the same call compare versions fairly.
#
#   here:        bash tools/cuda/ab_device.sh prepare REF_A REF_B [REF_C [REF_D]]   # git archive into ab/a, ab/b, ...
#   GPU machine: bash tools/cuda/ab_device.sh run [ROUNDS] [-- BENCH_ARGS...]
#                (device `run` call with carry ["ab"]: ab/ is git-ignored, so it travels only when carried)
#
# `run` builds bench_w4a16_cuda and cuda_op_check of every tree (CMake, in parallel), runs `cuda_op_check --quick`
# of each (a build that fails it is reported and not timed), then ROUNDS (default 2) rounds of
# `bench_w4a16_cuda BENCH_ARGS` (default: --no-sweep --no-moe-sweep), the trees in turn, then the side-by-side
# table of tools/cuda/ab_compare.py. Output: $OUT/ab.txt.
# AB_TIME_FAILED=1 times a tree whose check failed too (diagnostic builds that drop work on purpose to see what a
# kernel is bound by: their results are wrong by design; the failure is still printed).
# AB_DIR=DIR (a folder in the repo, default ab/) holds the trees: a second set, e.g. AB_DIR=$PWD/ab2 for both
# `prepare` and `run` (OUT=$OUT/2), lets two A/B sets run in one device call (carry ["ab", "ab2"]).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 3
AB="${AB_DIR:-$ROOT/ab}"

case "${1:-}" in
  prepare)
    shift
    [ $# -ge 2 ] && [ $# -le 4 ] || { echo "usage: $0 prepare REF_A REF_B [REF_C [REF_D]]" >&2; exit 2; }
    rm -rf "$AB" && mkdir -p "$AB" || exit 3
    sides=(a b c d)
    i=0
    for ref in "$@"; do
      side=${sides[$i]}
      i=$((i + 1))
      git rev-parse --verify -q "$ref^{commit}" >/dev/null || { echo "not a commit: $ref" >&2; exit 2; }
      mkdir -p "$AB/$side" && git archive "$ref" | tar -x -C "$AB/$side" || exit 3
      echo "$side $(git rev-parse --short "$ref") $ref" >>"$AB/refs.txt"
    done
    cat "$AB/refs.txt"
    echo "now: run the device with carry [\"$(basename "$AB")\"]: ${AB_DIR:+AB_DIR=\$PWD/$(basename "$AB") }bash tools/cuda/ab_device.sh run [ROUNDS] [-- BENCH_ARGS...]"
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
    mapfile -t sides < <(cut -d' ' -f1 "$AB/refs.txt")
    declare -A pid ok
    for side in "${sides[@]}"; do
      build "$side" &
      pid[$side]=$!
    done
    for side in "${sides[@]}"; do
      ok[$side]=1
      wait "${pid[$side]}" || ok[$side]=0
      if [ "${ok[$side]}" = 1 ]; then
        "$AB/$side/build/src/kernels/cuda/cuda_op_check" --quick >"$AB/$side.check.txt" 2>&1 ||
          [ "${AB_TIME_FAILED:-0}" = 1 ] || ok[$side]=0
        echo "$side: cuda_op_check --quick: $(tail -1 "$AB/$side.check.txt")" | tee -a "$LOG"
      else
        echo "$side: build FAILED: $(tail -3 "$AB/$side.build.txt" | tr '\n' ' ')" | tee -a "$LOG"
      fi
    done
    all_ok=1
    for r in $(seq 1 "$ROUNDS"); do
      for side in "${sides[@]}"; do
        [ "${ok[$side]}" = 1 ] || { all_ok=0; continue; }
        echo "== $side ($(grep "^$side " "$AB/refs.txt" | cut -d' ' -f2)), round $r" | tee -a "$LOG"
        # Table rows only, each once (the bench prints its main table twice: as it goes and at the end).
        "$AB/$side/build/src/kernels/cuda/bench_w4a16_cuda" "${ARGS[@]}" 2>&1 | grep -E '^\| ' | awk '!seen[$0]++' |
          tee -a "$LOG"
      done
    done
    echo "== side by side (us per round)" | tee -a "$LOG"
    python3 "$ROOT/tools/cuda/ab_compare.py" "$LOG" >"$LOG.tmp" 2>&1 || true
    tee -a "$LOG" <"$LOG.tmp"
    rm -f "$LOG.tmp"
    [ "$all_ok" = 1 ]
    ;;
  *)
    sed -n 2,12p "$0" >&2
    exit 2
    ;;
esac
