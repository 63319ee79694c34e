#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, then simulate a skull radiograph and translate it
# sim-low -> clinical-normal with the bundled model (MedShift/Resources/Models). Writes demo_output/.
# Extra arguments go to `medshift demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/medshift demo "$@"
