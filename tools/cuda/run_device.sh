#!/usr/bin/env bash
# Builds and runs the CUDA W4A16 check and benchmark on a GPU machine; run from the repo root: bash tools/cuda/run_device.sh
# Not a CI script and not an installer: it builds into build-cuda/ and writes logs to $OUT (default ./out).
#
# Build: CMake (-DSTRATA_CUDA=ON -DSTRATA_BUILD_TESTS=OFF) when cmake exists and configures (the top level needs
# nlohmann-json); otherwise nvcc directly, compiling only the CPU sources the check needs (no nlohmann).
# Env: STRATA_CUDA_BUILD=auto|cmake|nvcc (default auto), STRATA_SANITIZE=1 runs compute-sanitizer (default off),
#      STRATA_CUDA_TRACE=1 builds the skinny kernel's per-CTA trace stamps in (for BENCH_ARGS="--trace N K M S";
#      they change the kernels' register allocation, so timings of such a build are not the shipped kernels'),
#      STRATA_SKIP_BENCH=1 skips the benchmark, STRATA_SKIP_CHECK=1 the op check, STRATA_NCU=1 profiles one wgmma
#      launch (NCU_ARGS="N K M BT", NCU_EXTRA: more ncu options), BENCH_ARGS / CHECK_ARGS are passed to the programs.
# Outputs in $OUT: build.txt, device.txt, layout_sim.txt, cuda_op_check.txt, bench_w4a16.txt, sass_summary.txt,
#      sanitizer.txt. Exit status: non-zero if the build or cuda_op_check failed.
set -uo pipefail

OUT="${OUT:-./out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 3
BUILD="$ROOT/build-cuda"
MODE="${STRATA_CUDA_BUILD:-auto}"
NVCC="${NVCC:-nvcc}"
if ! command -v "$NVCC" >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi

log() { echo "[run_device] $*" | tee -a "$OUT/build.txt"; }
: >"$OUT/build.txt"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) changed files"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit \
    --format=csv 2>&1 || echo "nvidia-smi failed"
  "$NVCC" --version 2>&1 | tail -2
  command -v cmake >/dev/null 2>&1 && cmake --version | head -1 || echo "cmake: not found"
  echo "cpus: $(nproc)"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# ---------------------------------------------------------------------------------------------- build
build_cmake() {
  log "build: cmake -> $BUILD/cmake"
  # -march=native: the binaries run on this machine only, and it keeps the CPU reference building while a
  # new SIMD file has no per-file ISA flags yet.
  cmake -S "$ROOT" -B "$BUILD/cmake" -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON -DSTRATA_BUILD_TESTS=OFF \
    -DSTRATA_CUDA_TRACE="$([ "${STRATA_CUDA_TRACE:-0}" = 1 ] && echo ON || echo OFF)" \
    -DSTRATA_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS="${STRATA_DEVICE_CXXFLAGS:--march=native}" >>"$OUT/build.txt" 2>&1 || return 1
  cmake --build "$BUILD/cmake" -j16 --target cuda_op_check bench_w4a16_cuda w4a16_layout_sim \
    >>"$OUT/build.txt" 2>&1 || return 2
  BIN="$BUILD/cmake/src/kernels/cuda"
}

build_nvcc() {
  log "build: nvcc direct ($NVCC) -> $BUILD/nvcc"
  local obj="$BUILD/nvcc/obj"
  mkdir -p "$obj"
  local arch="-gencode=arch=compute_90a,code=sm_90a"
  local cu="-std=c++20 -O3 $arch -lineinfo -I src -Xcompiler -Wall,-Wextra,-Wno-unused-parameter"
  [ "${STRATA_CUDA_TRACE:-0}" = 1 ] && cu="$cu -DSTRATA_CUDA_TRACE"
  local cxx="-std=c++20 -O2 -I src -Xcompiler -fopenmp,-march=native,-Wall,-Wextra,-Wno-unused-parameter"
  local -a jobs=(
    "$cu -c src/kernels/cuda/w4a16_repack.cu -o $obj/w4a16_repack.o"
    "$cu -c src/kernels/cuda/w4a16_gemm.cu -o $obj/w4a16_gemm.o"
    "$cu -c src/kernels/cuda/w4a16_moe.cu -o $obj/w4a16_moe.o"
    "$cu -c tools/cuda/cuda_op_check.cu -o $obj/cuda_op_check.o"
    "$cu -c bench/cuda/bench_w4a16_cuda.cu -o $obj/bench_w4a16_cuda.o"
  )
  # The CPU reference: core, quant and the CPU kernels and backend (every file there; no nlohmann needed).
  local f
  for f in src/core/*.cpp src/quant/*.cpp src/kernels/cpu/*.cpp src/backend/cpu/*.cpp src/backend/cuda/*.cpp; do
    jobs+=("$cxx -c $f -o $obj/$(basename "${f%.cpp}").o")
  done
  local -a pids=()
  local j
  for j in "${jobs[@]}"; do
    echo "$NVCC $j" >>"$OUT/build.txt"
    # shellcheck disable=SC2086
    "$NVCC" $j >>"$OUT/build.txt" 2>&1 &
    pids+=($!)
  done
  local fail=0 p
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  [ "$fail" = 0 ] || return 1
  local cpu
  cpu="$(ls "$obj"/*.o | grep -v -e cuda_op_check.o -e bench_w4a16_cuda.o -e w4a16_ | tr '\n' ' ')"
  local cuda_objs="$obj/w4a16_gemm.o $obj/w4a16_repack.o $obj/w4a16_moe.o"
  local link="$arch -Xcompiler -fopenmp -lgomp -lcublas"
  # shellcheck disable=SC2086
  "$NVCC" $link -o "$BUILD/nvcc/cuda_op_check" "$obj/cuda_op_check.o" $cuda_objs $cpu \
    >>"$OUT/build.txt" 2>&1 || return 2
  # shellcheck disable=SC2086
  "$NVCC" $link -o "$BUILD/nvcc/bench_w4a16_cuda" "$obj/bench_w4a16_cuda.o" $cuda_objs $cpu >>"$OUT/build.txt" 2>&1 || return 2
  c++ -std=c++20 -O2 -I src tools/cuda/w4a16_layout_sim.cpp -o "$BUILD/nvcc/w4a16_layout_sim" >>"$OUT/build.txt" 2>&1 ||
    return 2
  BIN="$BUILD/nvcc"
}

BIN=""
t0=$(date +%s)
case "$MODE" in
  cmake) build_cmake || { log "cmake build FAILED (see build.txt)"; exit 3; } ;;
  nvcc) build_nvcc || { log "nvcc build FAILED (see build.txt)"; exit 3; } ;;
  *)
    if command -v cmake >/dev/null 2>&1 && build_cmake; then
      :
    else
      log "cmake unavailable or failed (e.g. no nlohmann-json here): falling back to nvcc"
      build_nvcc || { log "nvcc build FAILED (see build.txt)"; tail -40 "$OUT/build.txt"; exit 3; }
    fi
    ;;
esac
log "built in $(($(date +%s) - t0)) s: $BIN"

# ---------------------------------------------------------------------------------------------- run
status=0
log "layout simulation (host only)"
"$BIN/w4a16_layout_sim" 2>&1 | tee "$OUT/layout_sim.txt" || status=1

if [ "${STRATA_SKIP_CHECK:-0}" != 1 ]; then
  log "cuda_op_check"
  # shellcheck disable=SC2086
  "$BIN/cuda_op_check" ${CHECK_ARGS:-} 2>&1 | tee "$OUT/cuda_op_check.txt"
  check_rc=${PIPESTATUS[0]}
  [ "$check_rc" = 0 ] || { status=1; log "cuda_op_check FAILED (rc $check_rc); running the benchmark anyway"; }
fi

if [ "${STRATA_SKIP_BENCH:-0}" != 1 ]; then
  log "bench_w4a16_cuda"
  # shellcheck disable=SC2086
  "$BIN/bench_w4a16_cuda" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_w4a16.txt" || log "bench FAILED (rc ${PIPESTATUS[0]})"
fi

# Optional: Nsight Compute on one wgmma launch (STRATA_NCU=1; NCU_ARGS="N K M BT", default the M=4096 case).
if [ "${STRATA_NCU:-0}" != 0 ] && command -v ncu >/dev/null 2>&1; then
  log "ncu on bench_w4a16_cuda --one ${NCU_ARGS:-8192 28672 4096 256}"
  # shellcheck disable=SC2086
  ncu --kernel-name regex:${NCU_KERNEL:-wgmma} --launch-skip 2 --launch-count 1 --section SpeedOfLight --section WarpStateStats ${NCU_EXTRA:-} \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy \
    "$BIN/bench_w4a16_cuda" --one ${NCU_ARGS:-8192 28672 4096 256} >"$OUT/ncu.txt" 2>&1 || log "ncu failed"
fi

# Resource usage (registers, spills, smem) and the instruction mix of each kernel, for reading without a GPU.
if command -v cuobjdump >/dev/null 2>&1; then
  {
    cuobjdump --dump-resource-usage "$BIN/cuda_op_check" 2>&1 | grep -E "Function|REG|STACK|SHARED" | sed 's/^ *//'
    echo
    cuobjdump --dump-sass "$BIN/cuda_op_check" 2>/dev/null | awk '
      /Function :/ { if (name) { print name; for (k in c) printf "  %6d %s\n", c[k], k; delete c } name = $0 }
      /^ +\/\*[0-9a-f]+\*\/ / { op = $2; sub(/^@!?U?P[0-9T]+$/, "", op); if (op == "") op = $3; split(op, a, "."); c[a[1]]++ }
      END { if (name) { print name; for (k in c) printf "  %6d %s\n", c[k], k } }'
  } >"$OUT/sass_summary.txt" 2>&1
  # Full SASS of chosen kernels (STRATA_SASS="regex"), for reading the hot loops off the device.
  if [ -n "${STRATA_SASS:-}" ]; then
    cuobjdump --dump-sass "$BIN/cuda_op_check" 2>/dev/null |
      awk -v re="${STRATA_SASS}" '/Function :/ { keep = ($0 ~ re) } keep' >"$OUT/sass_kernels.txt"
  fi
fi

if [ "${STRATA_SANITIZE:-0}" != 0 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  log "compute-sanitizer (memcheck, racecheck) on cuda_op_check --quick"
  {
    compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/cuda_op_check" --quick
    echo "memcheck rc=$?"
    compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/cuda_op_check" --quick
    echo "racecheck rc=$?"
  } >"$OUT/sanitizer.txt" 2>&1
  grep -E "rc=|ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.txt" | tee -a "$OUT/build.txt"
fi

log "done: status $status; outputs in $OUT"
[ -f "$OUT/cuda_op_check.txt" ] && tail -3 "$OUT/cuda_op_check.txt"
exit "$status"
