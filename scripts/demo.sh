#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, then plans a 4-version timeline and
# draws its LR paths (docs/lr_paths.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false
.venv/bin/lrpath plan --versions 4 --steps-per-version 1000 --alpha 0.18 --plot docs/lr_paths.png
