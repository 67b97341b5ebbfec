#!/usr/bin/env bash
# The test command: install deps, configure, build, run the whole suite on CPU with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
# Tests run side by side on few cores: OpenMP threads that spin while waiting would steal the
# cores the other tests need (4 engine tests: 18.8 s spinning, 0.6 s passive on 2 cores).
OMP_WAIT_POLICY=passive ctest --test-dir build --output-on-failure -j"$(nproc)"

# CUDA sources (src/kernels/cuda, the CUDA backend, tools/cuda, bench/cuda): compiled, not run, when nvcc is
# present (CI has no GPU). A separate build dir, so the CPU build above is untouched; only the CUDA targets build.
NVCC="$(command -v nvcc || true)"
if [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi
if [ -n "$NVCC" ]; then
  echo "test.sh: compiling the CUDA sources with $NVCC (not running them)"
  cmake -S . -B build-cuda-ci -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON -DSTRATA_BUILD_TESTS=OFF \
    -DSTRATA_BUILD_BENCH=OFF -DCMAKE_CUDA_COMPILER="$NVCC" >/dev/null
  cmake --build build-cuda-ci -j"$(nproc)" --target strata_cuda strata_cuda_compile_only
else
  echo "test.sh: no nvcc, CUDA sources not compiled"
fi
