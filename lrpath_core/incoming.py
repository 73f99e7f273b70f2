"""The store's ``incoming/`` area: where new data versions land before they are ingested.

A folder ``incoming/<name>/`` counts as complete once it holds a ``_READY`` marker or a
``manifest.json``; writers put the marker last, so a half-uploaded drop is never picked up.
"""

from __future__ import annotations

import os
import re

from lrpath_core.data import SUPPORTED_SUFFIXES
from lrpath_core.storage import Store, StoreError

INCOMING = "incoming"
READY_MARKERS = ("_READY", "manifest.json")


def natural_key(name: str) -> list[object]:
    """``v2`` before ``v10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def ready_folders(store: Store) -> list[str]:
    """Names of complete folders under ``incoming/``, in natural order."""
    names = [n for n in store.ls(INCOMING) if not n.startswith((".", "_"))]
    ready = [n for n in names if any(store.exists(f"{INCOMING}/{n}/{m}") for m in READY_MARKERS)]
    return sorted(ready, key=natural_key)


def stage_incoming(store: Store, source: str, name: str | None = None) -> str:
    """Copy a local folder of shards into ``incoming/<name>/`` and mark it ready; returns its URL."""
    if not os.path.isdir(source):
        raise StoreError(f"{source} is not a folder: give a folder of .txt/.jsonl/.parquet shards")
    name = name or os.path.basename(os.path.normpath(source))
    shards = sorted(f for f in os.listdir(source) if f.endswith(SUPPORTED_SUFFIXES) and not f.startswith("."))
    if not shards:
        raise StoreError(f"{source} holds no .txt, .jsonl or .parquet shards: nothing to ingest")
    target = f"{INCOMING}/{name}"
    if store.exists(f"{target}/_READY"):
        return store.url_of(target)
    for shard in shards:
        store.put_file(os.path.join(source, shard), f"{target}/{shard}")
    store.write_text(f"{target}/_READY", "\n".join(shards) + "\n")
    return store.url_of(target)
