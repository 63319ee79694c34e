#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install MedShift with its pinned
# dependencies. torch is installed first, pinned, so pip never pulls a CUDA build on a CPU machine.
# Usage: bash scripts/setup_env.sh [extra ...]   (e.g. "test"). pip's output goes to .venv/install.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extras=""
if [ $# -gt 0 ]; then extras="[$(IFS=,; echo "$*")]"; fi
log=.venv/install.log
echo "setting up .venv (torch==2.13.0 and the pinned dependencies of pyproject.toml${extras:+ with $extras}); log: $log"
if ! { .venv/bin/python -m pip install --upgrade "pip>=23.2" &&
       .venv/bin/python -m pip install "torch==2.13.0" &&
       .venv/bin/python -m pip install -e ".${extras}"; } >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "setup failed: see $log" >&2
  exit 1
fi
