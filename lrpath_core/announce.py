"""Exactly-once announcement of a data drop: create-only markers in the store (no Prefect here).

``incoming/<name>/_ANNOUNCED``
    created by whoever first sees the drop complete (the watcher, the relay); only the one that
    created it emits ``lrpath.data.arrived``, however many watchers, relays and notifications race.
``incoming/<name>/_CLAIMED``
    the id of the version-update run that ingests the drop, written under the store's update
    lease just before ingesting. Only the lease holder works on a store, so a claim left by
    another run on a drop that is still not ingested was left by a run that died: it is taken over.
``incoming/_recovered/v{N}-{run id}``
    version N was announced again because run ``run id`` crashed or failed (once per such run,
    at most :data:`MAX_RECOVERIES` times per version).

This module stays light (no torch, no transformers): the watcher and the relay import it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable

from lrpath_core import layout
from lrpath_core.config import DEFAULT_STORE
from lrpath_core.incoming import ready_folders
from lrpath_core.storage import Store, StoreError
from lrpath_core.timeline import Timeline, VersionRecord

DATA_ARRIVED = "lrpath.data.arrived"
MAX_RECOVERIES = 3
STALE_ANNOUNCEMENT_S = 900.0
"""An announced drop nobody claimed for this long is announced again (its run may have been
cancelled as a duplicate while another update was finishing)."""


def default_store() -> str:
    return os.environ.get("LRPATH_STORE", DEFAULT_STORE)


def event_resource(store_url: str) -> dict[str, str]:
    return {"prefect.resource.id": f"lrpath.store.{store_url}", "prefect.resource.name": store_url}


def event_payload(store_url: str, drop: str) -> dict[str, str]:
    return {"store": store_url, "drop": drop}


def read_timeline(store: Store) -> Timeline | None:
    """``timeline.json`` without the tokenizer check (that one imports transformers)."""
    raw = store.read_json(layout.TIMELINE) if store.exists(layout.TIMELINE) else None
    return Timeline.model_validate(raw) if raw is not None else None


def waiting_drops(store: Store, timeline: Timeline | None = None) -> list[str]:
    """Complete, not held drops under ``incoming/`` that are not versions yet, in order."""
    timeline = timeline if timeline is not None else read_timeline(store)
    known = {v.name for v in timeline.versions} if timeline else set()
    return [name for name in ready_folders(store) if name not in known]


def unreleased(timeline: Timeline | None) -> list[VersionRecord]:
    return [v for v in timeline.versions if not v.releases] if timeline else []


def nothing_to_do(store: Store) -> bool:
    """No drop waits to be ingested and every version is released: a run may end at once."""
    timeline = read_timeline(store)
    return not waiting_drops(store, timeline) and not unreleased(timeline)


def announce(store: Store, name: str) -> bool:
    """Mark drop ``name`` announced; True only for the one caller that created the marker."""
    stamp = json.dumps({"announced_at": time.time(), "pid": os.getpid()}).encode()
    return store.create(layout.announced_marker(name), stamp)


Emitter = Callable[[str, str], None]
"""``emit(store_url, drop)``: send ``lrpath.data.arrived`` for ``drop`` (Prefect's client, or the server's REST API)."""


def announce_drops(store: Store, names: Iterable[str], emit: Emitter) -> list[str]:
    """Announce each drop once: emit only for the drops whose marker this call created.

    The one path every emitter takes (the watcher, the relay, ``deployments.stack``), so that
    however many of them see a drop, ``lrpath.data.arrived`` goes out once for it.
    """
    announced = []
    for name in names:
        if announce(store, name):
            emit(store.url, name)
            announced.append(name)
    return announced


def announced_at(store: Store, name: str) -> float | None:
    marker = layout.announced_marker(name)
    try:
        return float(store.read_json(marker)["announced_at"]) if store.exists(marker) else None
    except (StoreError, KeyError, TypeError, ValueError):
        return None  # removed meanwhile, or not written by announce()


def stale_announcements(store: Store, older_than_s: float = STALE_ANNOUNCEMENT_S) -> list[str]:
    """Waiting drops announced more than ``older_than_s`` ago that no run has claimed."""
    now = time.time()
    return [
        name
        for name in waiting_drops(store)
        if (stamp := announced_at(store, name)) is not None
        and now - stamp > older_than_s
        and claimed_by(store, name) is None
    ]


def renew_announcement(store: Store, name: str) -> None:
    stamp = json.dumps({"announced_at": time.time(), "pid": os.getpid(), "renewed": True}).encode()
    store.write_bytes(layout.announced_marker(name), stamp)


def claimed_by(store: Store, name: str) -> str | None:
    marker = layout.claimed_marker(name)
    try:
        return store.read_text(marker).strip() or None if store.exists(marker) else None
    except StoreError:
        return None


def claim(store: Store, name: str, run_id: str) -> str | None:
    """Claim drop ``name`` for run ``run_id``; call it holding the update lease.

    Returns None when the claim is new or already this run's, else the id of the run whose
    claim was taken over (a run that died before it finished ingesting).
    """
    if store.create(layout.claimed_marker(name), run_id.encode()):
        return None
    previous = claimed_by(store, name)
    if previous == run_id:
        return None
    store.write_bytes(layout.claimed_marker(name), run_id.encode())
    return previous or "unknown"


def announce_recovery(store: Store, version: int, failed_run_id: str) -> bool:
    """Mark version ``version`` re-announced after run ``failed_run_id``; True for the one caller
    that created the marker, False when that run was handled already or the version was
    re-announced :data:`MAX_RECOVERIES` times (it then needs a person)."""
    done = [n for n in store.ls(layout.RECOVERED) if n.startswith(f"v{version}-")]
    if len(done) >= MAX_RECOVERIES:
        return False
    stamp = json.dumps({"announced_at": time.time(), "after_run": failed_run_id}).encode()
    return store.create(layout.recovery_marker(version, failed_run_id), stamp)
