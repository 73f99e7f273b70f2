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
QUARANTINE = "quarantine"
READY_MARKERS = ("_READY", "manifest.json")
HELD = "_HELD"
"""A drop with bad files is held: not ingested until the files are fixed or the rest confirmed."""


def natural_key(name: str) -> list[object]:
    """``v2`` before ``v10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def ready_folders(store: Store) -> list[str]:
    """Names of complete folders under ``incoming/``, in natural order."""
    names = [n for n in store.ls(INCOMING) if not n.startswith((".", "_"))]
    ready = [n for n in names if any(store.exists(f"{INCOMING}/{n}/{m}") for m in READY_MARKERS)]
    return sorted((n for n in ready if not store.exists(f"{INCOMING}/{n}/{HELD}")), key=natural_key)


def held_folders(store: Store) -> list[str]:
    names = [n for n in store.ls(INCOMING) if not n.startswith((".", "_"))]
    return sorted((n for n in names if store.exists(f"{INCOMING}/{n}/{HELD}")), key=natural_key)


def incoming_name(store: Store, source_url: str) -> str | None:
    """The drop's name when ``source_url`` is a folder under this store's ``incoming/``."""
    prefix = store.url_of(INCOMING).rstrip("/") + "/"
    source = source_url.rstrip("/")
    if source.startswith(prefix) and "/" not in source[len(prefix) :]:
        return source[len(prefix) :]
    return None


def hold(store: Store, name: str, problems: list[tuple[str, str]]) -> str:
    """Quarantine a drop's bad files (each with a ``.reason.txt``) and hold the rest of the drop.

    Nothing is deleted: bad files move to ``quarantine/<name>/``; the valid files stay where they
    are, but the drop is not ingested until the user fixes it (re-uploads the files and runs
    ``lrpath release NAME``) or confirms the rest as it is (``lrpath release NAME``).
    """
    lines = []
    for url, problem in problems:
        filename = url.rstrip("/").rsplit("/", 1)[-1]
        source_rel = f"{INCOMING}/{name}/{filename}"
        target_rel = f"{QUARANTINE}/{name}/{filename}"
        if store.exists(source_rel):
            store.move(source_rel, target_rel)
        store.write_text(f"{target_rel}.reason.txt", problem + "\n")
        lines.append(f"{filename}: {problem}")
    store.write_text(f"{INCOMING}/{name}/{HELD}", "\n".join(lines) + "\n")
    return store.url_of(f"{QUARANTINE}/{name}")


def release_hold(store: Store, name: str) -> None:
    if not store.exists(f"{INCOMING}/{name}/{HELD}"):
        raise StoreError(f"{store.url_of(INCOMING + '/' + name)} is not held: nothing to release")
    store.remove(f"{INCOMING}/{name}/{HELD}")


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
