#!/usr/bin/env bash
# SASS of the dense W4A16 kernels (w4a16_gemm.cu) without a GPU: registers, spills and the opcode mix of each
# kernel's innermost loop, for one source tree or two side by side (before an A/B on the device: did an edit
# change the kernels you meant to change, and only those?). Needs nvcc (sm_90a) here; fetches NVIDIA's nvdisasm
# from PyPI (nvidia-cuda-nvdisasm) into ~/.cache/strata/nvdisasm on first use (the CUDA toolkit here ships no
# disassembler).
#
#   bash tools/cuda/sass_local.sh [TREE_A [TREE_B]] [-- KERNEL_REGEX]
#     TREE_*: source trees (default: this repo); e.g. a `git archive REF | tar -x -C DIR` of another commit
#     KERNEL_REGEX: which kernels (default: w4a16_skinny_pipe_kernel; e.g. w4a16_skinny_flat_kernel)
#
# Output: per kernel (name and template arguments: pipe MT R S OUT, flat MT R T), registers / spill bytes and the
# innermost loop's instruction count and top opcodes (the whole kernel's where it has no loop, as the unrolled
# flat kernel) of each tree; with two trees, whether the SASS is identical.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
trees=()
RE="w4a16_skinny_pipe_kernel"
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then RE="${2:?kernel regex after --}"; break; fi
  trees+=("$(cd "$1" && pwd)")
  shift
done
[ ${#trees[@]} -gt 0 ] || trees=("$ROOT")
[ ${#trees[@]} -le 2 ] || { echo "at most two trees" >&2; exit 2; }

NVCC="${NVCC:-nvcc}"
command -v "$NVCC" >/dev/null 2>&1 || NVCC=/usr/local/cuda/bin/nvcc
[ -x "$(command -v "$NVCC")" ] || { echo "nvcc not found" >&2; exit 3; }
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/strata/nvdisasm"
NVDISASM="$(find "$CACHE" -type f -name nvdisasm 2>/dev/null | head -1 || true)"
if [ -z "$NVDISASM" ]; then
  mkdir -p "$CACHE"
  python3 -m pip download --no-deps -q -d "$CACHE" nvidia-cuda-nvdisasm
  (cd "$CACHE" && python3 -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('.') for w in glob.glob('*.whl')]")
  NVDISASM="$(find "$CACHE" -type f -name nvdisasm | head -1)"
  chmod +x "$NVDISASM"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
i=0
for t in "${trees[@]}"; do
  out="$WORK/$i"
  mkdir -p "$out"
  # -Xptxas -v for registers and spills; the cubin for the disassembly (same flags as the CMake build).
  "$NVCC" -std=c++20 -O3 -arch=sm_90a -cubin -I "$t/src" "$t/src/kernels/cuda/w4a16_gemm.cu" -o "$out/gemm.cubin" \
    -Xptxas -v 2>"$out/ptxas.txt"
  "$NVDISASM" -c "$out/gemm.cubin" >"$out/gemm.sass"
  i=$((i + 1))
done
python3 "$ROOT/tools/cuda/sass_loops.py" "$RE" "$WORK"/*/
