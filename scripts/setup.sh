#!/usr/bin/env bash
# Installs what building and testing Strata needs on a fresh Debian machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(cmake g++ make libgtest-dev nlohmann-json3-dev libonig-dev libicu-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# Python reference implementations for the black-box tests (tests/requirements.txt).
if grep -qv '^\s*\(#\|$\)' tests/requirements.txt 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
