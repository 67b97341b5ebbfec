#!/usr/bin/env bash
# Nsight Compute profiles of single W4A16 linear launches, for reading where a kernel's time goes off the device.
# Run on the GPU machine from the repo root, after a build (tools/cuda/run_device.sh or ab_device.sh run):
#
#   bash tools/cuda/ncu_device.sh BENCH_BIN KERNEL_REGEX "N K M BT" ["N K M BT" ...]
#   e.g. bash tools/cuda/ncu_device.sh ab/a/build/src/kernels/cuda/bench_w4a16_cuda skinny_pipe "2048 7168 1 0"
#
# Each config runs `bench_w4a16_cuda --one N K M BT` (five launches of one linear; BT 0 = auto path) under ncu,
# profiles the third launch whose name matches KERNEL_REGEX with the full section set, and writes, bundled into one
# $OUT/ncu.tgz (the device tool returns only a few files from $OUT):
#   ncu_N_K_M.txt      the details page (speed of light, warp states, scheduler, instruction mix, occupancy)
#   ncu_N_K_M_sass.csv the source page: every SASS instruction with its executed count and stall samples
#   ncu_N_K_M.log      ncu's own output
# ncu serialises launches and flushes caches between its replay passes: these are single-launch views (no PDL
# overlap), for instruction-level questions, not for timing.
set -uo pipefail
[ $# -ge 3 ] || { sed -n 2,15p "$0" >&2; exit 2; }
BIN="$1"
RE="$2"
shift 2
OUT="${OUT:-./out}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
command -v ncu >/dev/null 2>&1 || { echo "ncu not found" >&2; exit 3; }
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 2; }
rc=0
for cfg in "$@"; do
  read -r N K M BT <<<"$cfg"
  tag="${N}_${K}_${M}"
  rep="$WORK/ncu_$tag"
  echo "[ncu_device] $cfg"
  # shellcheck disable=SC2086
  if ncu --kernel-name "regex:$RE" --launch-skip 2 --launch-count 1 --set full --import-source no -f -o "$rep" \
    "$BIN" --one $N $K $M "${BT:-0}" >"$WORK/ncu_${tag}.log" 2>&1; then
    ncu -i "$rep.ncu-rep" --page details --print-details all >"$WORK/ncu_${tag}.txt" 2>&1 || rc=1
    ncu -i "$rep.ncu-rep" --page source --csv --print-source sass >"$WORK/ncu_${tag}_sass.csv" 2>&1 || rc=1
    rm -f "$rep.ncu-rep"
  else
    echo "[ncu_device] ncu failed on $cfg: $(tail -3 "$WORK/ncu_${tag}.log" | tr '\n' ' ')"
    rc=1
  fi
done
tar czf "$OUT/ncu.tgz" -C "$WORK" --exclude='*.ncu-rep' . || rc=1
exit $rc
