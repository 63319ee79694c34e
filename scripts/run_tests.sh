#!/usr/bin/env bash
# The test command: set up .venv with the test extras, then run the pytest suite (Testing/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
exec .venv/bin/python -m pytest Testing "$@"
