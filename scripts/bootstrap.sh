#!/usr/bin/env bash
# Create or refresh the project-local virtualenv (.venv): torch==2.13.0 first (a CPU build lies
# on this machine's disk; a bare `torch` requirement would pull a multi-GB CUDA build), then the
# project with its dev extras. Re-runs are cheap: nothing is reinstalled while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.lrpath-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "lrpath: installing into .venv (torch 2.13.0 CPU first, then the project) ..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi
