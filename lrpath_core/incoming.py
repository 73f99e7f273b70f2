"""The store's ``incoming/`` area: where new data versions land before they are ingested.

A folder ``incoming/<name>/`` counts as complete once it holds a ``_READY`` marker or a
``manifest.json``; writers put the marker last, so a half-uploaded drop is never picked up.
A drop with bad files is held (``_HELD``): not ingested until the files are fixed or the rest
confirmed.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, Field

from lrpath_core import layout
from lrpath_core.shards import SUPPORTED_SUFFIXES, data_sha256
from lrpath_core.storage import Store, StoreError, sha256_file

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


class StagedDrop(BaseModel):
    """What ``lrpath ingest PATH`` put into ``incoming/<name>/``, and what it left out and why."""

    url: str
    name: str
    shards: list[str]
    data_sha256: str
    skipped: list[str] = Field(default_factory=list, description="'file: reason' for every file not staged")
    duplicates: list[str] = Field(
        default_factory=list, description="'file: same content as other' (stored once)"
    )
    already_staged: bool = False


def stage_incoming(store: Store, source: str, name: str | None = None) -> StagedDrop:
    """Copy a local folder of shards into ``incoming/<name>/`` and mark it ready.

    Every file that is not staged is listed with its reason; shards with identical content are
    stored once. The same content staged again is a no-op; other content under a name that is
    already staged is refused (versions are immutable), unless the drop is held for bad files,
    in which case the new files replace it and the hold is lifted.
    """
    if not os.path.isdir(source):
        raise StoreError(f"{source} is not a folder: give a folder of .txt/.jsonl/.parquet shards")
    name = layout.checked_name(name or os.path.basename(os.path.normpath(source)))
    shards, skipped = _shard_files(source)
    if not shards:
        reasons = f" ({'; '.join(skipped)})" if skipped else ""
        raise StoreError(f"{source} holds no .txt, .jsonl or .parquet shards: nothing to ingest{reasons}")
    unique: dict[tuple[str, str], str] = {}  # (suffix, sha256) → first file: a format parses its bytes
    duplicates = []
    for shard in shards:
        key = (os.path.splitext(shard)[1].lower(), sha256_file(os.path.join(source, shard)))
        if key in unique:
            duplicates.append(f"{shard}: same content as {unique[key]} (stored once)")
        else:
            unique[key] = shard
    drop = StagedDrop(
        url=store.url_of(layout.incoming_dir(name)),
        name=name,
        shards=sorted(unique.values()),
        data_sha256=data_sha256(digest for _, digest in unique),
        skipped=skipped,
        duplicates=duplicates,
    )
    ready = layout.incoming_file(name, layout.READY_MARKER)
    held = layout.incoming_file(name, layout.HELD_MARKER)
    if store.exists(ready) and not store.exists(held):
        staged = staged_sha256(store, name)
        if staged != drop.data_sha256:
            raise StoreError(
                f"{drop.url} already holds other content under the name {name!r} (data sha256 {staged[:16]}… "
                f"staged, {drop.data_sha256[:16]}… given): versions are immutable; give the new data another "
                "name with --name"
            )
        return drop.model_copy(update={"already_staged": True})
    for shard in drop.shards:
        store.put_file(os.path.join(source, shard), layout.incoming_file(name, shard))
    store.write_text(ready, "\n".join(drop.shards) + "\n")
    store.remove(held)
    return drop


def staged_sha256(store: Store, name: str) -> str:
    """The data sha256 of the shards now in ``incoming/<name>/`` (markers left out)."""
    folder = layout.incoming_dir(name)
    names = [n for n in store.ls(folder) if not n.startswith(("_", "."))]
    return data_sha256(store.sha256(layout.incoming_file(name, n)) for n in names)


def _shard_files(source: str) -> tuple[list[str], list[str]]:
    """Shard file names directly in ``source``, and ``'name: reason'`` for every other entry."""
    shards, skipped = [], []
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if entry.is_symlink():
            skipped.append(f"{entry.name}: a symbolic link (copy the file itself into the folder)")
        elif entry.is_dir():
            skipped.append(f"{entry.name}: a sub-folder (shards must lie directly in the drop folder)")
        elif entry.name.startswith((".", "_")):
            skipped.append(f"{entry.name}: a hidden or marker file")
        elif not entry.name.lower().endswith(SUPPORTED_SUFFIXES):
            skipped.append(f"{entry.name}: not a {', '.join(SUPPORTED_SUFFIXES)} shard")
        else:
            shards.append(layout.checked_filename(entry.name))
    return shards, skipped
