#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, then runs the whole 4-version
# timeline on GCIDE through the Prefect flows into ./lrpath-store (`lrpath demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/bootstrap.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec .venv/bin/lrpath demo "$@"
