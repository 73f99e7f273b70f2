"""The store's ``incoming/`` area: where new data versions land before they are ingested.

A folder ``incoming/<name>/`` counts as complete once it holds a ``_READY`` marker or a
``manifest.json``; writers put the marker last, so a half-uploaded drop is never picked up.
A drop with bad files is held (``_HELD``): not ingested until the files are fixed or the rest
confirmed.
"""

from __future__ import annotations

import os
import re

from lrpath_core import layout
from lrpath_core.shards import SUPPORTED_SUFFIXES
from lrpath_core.storage import Store, StoreError

READY_MARKERS = (layout.READY_MARKER, "manifest.json")
REASON_SUFFIX = ".reason.txt"


def natural_key(name: str) -> list[object]:
    """``v2`` before ``v10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def ready_folders(store: Store) -> list[str]:
    """Names of complete folders under ``incoming/``, in natural order."""
    names = [n for n in store.ls(layout.INCOMING) if not n.startswith((".", "_"))]
    ready = [n for n in names if any(store.exists(layout.incoming_file(n, m)) for m in READY_MARKERS)]
    held = {n for n in ready if store.exists(layout.incoming_file(n, layout.HELD_MARKER))}
    return sorted((n for n in ready if n not in held), key=natural_key)


def incoming_name(store: Store, source_url: str) -> str | None:
    """The drop's name when ``source_url`` is a folder under this store's ``incoming/``."""
    prefix = store.url_of(layout.INCOMING).rstrip("/") + "/"
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
        source_rel = layout.incoming_file(name, filename)
        if store.exists(source_rel):
            store.move(source_rel, layout.quarantine_file(name, filename))
        store.write_text(layout.quarantine_file(name, filename + REASON_SUFFIX), problem + "\n")
        lines.append(f"{filename}: {problem}")
    store.write_text(layout.incoming_file(name, layout.HELD_MARKER), "\n".join(lines) + "\n")
    return store.url_of(layout.quarantine_dir(name))


def release_hold(store: Store, name: str) -> None:
    held = layout.incoming_file(name, layout.HELD_MARKER)
    if not store.exists(held):
        raise StoreError(f"{store.url_of(layout.incoming_dir(name))} is not held: nothing to release")
    store.remove(held)


def stage_incoming(store: Store, source: str, name: str | None = None) -> str:
    """Copy a local folder of shards into ``incoming/<name>/`` and mark it ready; returns its URL."""
    if not os.path.isdir(source):
        raise StoreError(f"{source} is not a folder: give a folder of .txt/.jsonl/.parquet shards")
    name = name or os.path.basename(os.path.normpath(source))
    shards = sorted(f for f in os.listdir(source) if f.endswith(SUPPORTED_SUFFIXES) and not f.startswith("."))
    if not shards:
        raise StoreError(f"{source} holds no .txt, .jsonl or .parquet shards: nothing to ingest")
    ready = layout.incoming_file(name, layout.READY_MARKER)
    if store.exists(ready):
        return store.url_of(layout.incoming_dir(name))
    for shard in shards:
        store.put_file(os.path.join(source, shard), layout.incoming_file(name, shard))
    store.write_text(ready, "\n".join(shards) + "\n")
    return store.url_of(layout.incoming_dir(name))
