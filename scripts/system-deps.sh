#!/usr/bin/env bash
# Debian packages the demo and the tests use: dict-gcide (the default corpus).
set -euo pipefail
if [ ! -f /usr/share/dictd/gcide.dict.dz ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "lrpath: installing dict-gcide (the GCIDE corpus) with apt-get ..." >&2
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq dict-gcide >/dev/null
fi
