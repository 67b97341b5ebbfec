#!/usr/bin/env bash
# llama.cpp, the peer the benchmarks compare against, built from source out of the PyPI sdist of
# llama-cpp-python (which vendors a pinned llama.cpp): `pip download --no-binary :all: --no-deps`,
# untar, CMake Release build of the requested tools into $WORK. Nothing of it is committed.
# Used by bench/smollm2/bench_vs_llamacpp.sh and bench/serving/run.sh.
# Usage: bash bench/llamacpp/build.sh [TARGET...]   (default: llama-perplexity llama-bench llama-tokenize)
# Prints the directory holding the binaries (…/build/bin) on stdout; build logs go to stderr.
# Env: WORK (default /tmp/strata-llamacpp), LLAMA_CPP_PYTHON (sdist version, default 0.3.36),
#      JOBS (parallel build jobs, default nproc).
set -euo pipefail
WORK="${WORK:-/tmp/strata-llamacpp}"
LLAMA_CPP_PYTHON="${LLAMA_CPP_PYTHON:-0.3.36}"
JOBS="${JOBS:-$(nproc)}"
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(llama-perplexity llama-bench llama-tokenize)
mkdir -p "$WORK"
SRC="$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
BIN="$SRC/build/bin"
missing=()
for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ ! -d "$SRC" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$WORK" >&2
    tar -xzf "$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$WORK"
  fi
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON >&2
  cmake --build "$SRC/build" -j"$JOBS" --target "${missing[@]}" >&2
fi
echo "$BIN"
