#!/usr/bin/env bash
# Debian packages the demo and the tests use: dict-gcide (the default corpus) and PostgreSQL 15
# (the tests start a throw-away cluster to run Prefect on it with two workers).
set -euo pipefail
missing=()
[ -f /usr/share/dictd/gcide.dict.dz ] || missing+=(dict-gcide)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "lrpath: installing ${missing[*]} with apt-get ..." >&2
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
