"""Exactly-once announcement: create-only markers, claims, recovery markers; a light watcher."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from lrpath_core import announce, layout
from lrpath_core.storage import Store


def staged(tmp_path: Path, *names: str) -> Store:
    store = Store(str(tmp_path / "store"))
    for name in names:
        store.write_text(layout.incoming_file(name, "a.txt"), "text\n")
        store.write_text(layout.incoming_file(name, layout.READY_MARKER), "a.txt\n")
    return store


def concurrently(count: int, call) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_five_concurrent_announcements_give_one_announcer(tmp_path):
    store = staged(tmp_path, "v1")
    assert announce.waiting_drops(store) == ["v1"]
    assert sum(concurrently(5, lambda: announce.announce(store, "v1"))) == 1
    # 3 concurrent, then 2 more one after the other: still the one from before
    assert sum(concurrently(3, lambda: announce.announce(store, "v1"))) == 0
    assert not announce.announce(store, "v1") and not announce.announce(store, "v1")
    assert announce.announced_at(store, "v1") is not None


def test_claim_is_create_only_and_a_dead_runs_claim_is_taken_over(tmp_path):
    store = staged(tmp_path, "v1")
    assert announce.claimed_by(store, "v1") is None
    assert announce.claim(store, "v1", "run-a") is None
    assert announce.claim(store, "v1", "run-a") is None  # the same run again: still its claim
    assert announce.claimed_by(store, "v1") == "run-a"
    assert announce.claim(store, "v1", "run-b") == "run-a"  # under the lease: run-a is gone
    assert announce.claimed_by(store, "v1") == "run-b"
    assert "_CLAIMED" not in announce.waiting_drops(store)


def test_nothing_to_do_without_waiting_drops(tmp_path):
    store = Store(str(tmp_path / "empty"))
    assert announce.nothing_to_do(store)
    staged(tmp_path, "v1")
    assert not announce.nothing_to_do(Store(str(tmp_path / "store")))


def test_stale_announcements_are_the_unclaimed_old_ones(tmp_path):
    store = staged(tmp_path, "v1", "v2")
    announce.announce(store, "v1")
    announce.announce(store, "v2")
    announce.claim(store, "v2", "run-a")
    assert announce.stale_announcements(store, older_than_s=60) == []
    assert announce.stale_announcements(store, older_than_s=-1) == ["v1"]
    announce.renew_announcement(store, "v1")
    assert announce.stale_announcements(store, older_than_s=60) == []


def test_a_version_is_reannounced_once_per_dead_run_and_at_most_max_times(tmp_path):
    store = Store(str(tmp_path / "store"))
    assert sum(concurrently(4, lambda: announce.announce_recovery(store, 3, "run-1"))) == 1
    assert announce.announce_recovery(store, 3, "run-2")
    assert announce.announce_recovery(store, 3, "run-3")
    assert not announce.announce_recovery(store, 3, "run-4"), "after MAX_RECOVERIES a person decides"
    assert announce.announce_recovery(store, 4, "run-4")
    assert announce.waiting_drops(store) == [], "the recovery folder is never a drop"


def test_the_watcher_the_relay_and_the_flow_modules_import_neither_torch_nor_transformers():
    """Prefect imports a flow's module before it sets the run Running: torch and transformers (about
    2.7 s on 2 cores) are imported by the tasks that train, evaluate and publish."""
    code = (
        "import sys, flows.watch_incoming, flows.relay, lrpath_core.announce, "
        "flows.version_update, flows.update_version, flows.rerun_branch; "
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
