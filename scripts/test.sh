#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs ruff and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/bootstrap.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect-test}"
.venv/bin/python -m ruff check .
# two processes (pytest-xdist): most of the suite waits on servers, workers and polls, so the second
# one fills that time (18.5 min -> 11.7 min on 2 cores); worksteal evens out the slow server tests
exec .venv/bin/python -m pytest -q -n 2 --dist worksteal --durations=20 "$@"
