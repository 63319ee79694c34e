#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install MedShift with its pinned
# dependencies. torch is installed first, pinned, so pip never pulls a CUDA build on a CPU machine.
# Usage: bash scripts/setup_env.sh [extra ...]   (e.g. "test")
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23.2" 2>/dev/null || true
.venv/bin/python -m pip install -q "torch==2.13.0"
extras=""
if [ $# -gt 0 ]; then extras="[$(IFS=,; echo "$*")]"; fi
.venv/bin/python -m pip install -q -e ".${extras}"
