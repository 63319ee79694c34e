#!/usr/bin/env bash
# The test command: set up .venv with the test extras, check the code with ruff (pyproject.toml's rules),
# then run the whole pytest suite (Testing/), the tests marked slow included.
# For a quick run while developing, `.venv/bin/python -m pytest` leaves the slow ones out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh test
echo "ruff check ."
.venv/bin/ruff check .
exec .venv/bin/python -m pytest Testing -m "slow or not slow" "$@"
