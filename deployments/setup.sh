#!/usr/bin/env bash
# On a fresh machine: install, then start a local Prefect server (SQLite), the lrpath-cpu and
# lrpath-gpu process pools, the `gpu` concurrency limit, every deployment of prefect.yaml and
# one worker per pool. Open http://127.0.0.1:4200 for the UI. Ctrl-C stops it all.
# `lrpath server up` is the detached, idempotent variant (PostgreSQL, several workers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m deployments.stack up "$@"
