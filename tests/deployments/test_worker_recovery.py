"""The worker machine dies mid-branch: a new worker releases the version with no one stepping in.

A real server, a GPU-pool worker, and the ``watch-incoming`` deployment on a CPU-pool worker every
few seconds. The worker and every process below it (the flow run runs in its own session, so
killing the worker's process group alone would leave the run training) get SIGKILL, as when a
machine is lost. Prefect's zombie automation sets the runs that stopped sending heartbeats
Crashed, the watcher announces the version again, and the new run resumes the branch from its
newest checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from deployments.stack import HEARTBEAT_S, local_stack
from lrpath_core import layout
from lrpath_core.incoming import stage_incoming
from lrpath_core.processes import descendants
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import FINAL_STATES, flow_runs, wait_until  # noqa: E402

from tasks import gpu_limit  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]

WATCH_S = 5
ZOMBIE_AFTER_S = 45
"""1.5 heartbeats (30 s, Prefect's shortest); production uses 3 (deployments.stack)."""
GPU_LEASE_S = gpu_limit.GPU_LEASE_S
"""The dead run's slot of the ``gpu`` limit comes back when its lease expires."""


def branch_checkpoints(root: Path) -> list[str]:
    return sorted(p.name for p in (root / layout.BRANCHES).glob("*/step-*"))


def released(store: Store) -> bool:
    timeline = store.read_json(layout.TIMELINE) if store.exists(layout.TIMELINE) else None
    return bool(timeline and timeline["versions"][0]["releases"])


def kill_machine(pid: int) -> None:
    """SIGKILL a worker's process group and every process below it, wherever its session."""
    below = descendants(pid)
    os.killpg(pid, signal.SIGKILL)
    for other in below:
        try:
            os.kill(other, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_version_whose_worker_was_killed_mid_branch_is_released_by_a_new_worker(
    tmp_path, monkeypatch, synthetic_sources, make_config
):
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")
    monkeypatch.setenv("PREFECT_WORKER_PREFETCH_SECONDS", "1")
    monkeypatch.setenv("LRPATH_DEVICE_LOCKS", str(tmp_path / "device-locks"))  # this test's slots only
    root = tmp_path / "store"
    store = Store(str(root))
    # 20 steps: the main path to step 10, then a branch of 10 steps with a checkpoint every 2
    save_config(store, make_config(store.url, **{"paradigm.alpha": 0.5, "checkpoint_every": 2}))
    stage_incoming(store, synthetic_sources[0])

    with local_stack(
        tmp_path / "prefect",
        store.url,
        workers={},
        deploy=["version-update", "watch-incoming"],
        zombie_after_s=ZOMBIE_AFTER_S,
    ) as stack:
        url = stack.api_url
        stack.set_interval("watch-incoming", WATCH_S)
        stack.start_workers({"lrpath-gpu": 1, "lrpath-cpu": None})
        gpu_worker = stack.processes[-2]
        time.sleep(2)  # let the trigger service load the new deployment's automation
        assert stack.announce(store.url) == ["v1"]
        wait_until(lambda: branch_checkpoints(root), 150, "a branch checkpoint", lambda: flow_runs(url))
        assert not released(store)

        kill_machine(gpu_worker.pid)
        killed_at = time.monotonic()
        gpu_worker.wait(10)
        (dead,) = flow_runs(url, flow="update-version")
        stack.start_workers({"lrpath-gpu": 1})

        # the zombie found, the watcher's next tick, the dead run's gpu slot back, the rest trained
        limit = max(ZOMBIE_AFTER_S + HEARTBEAT_S + WATCH_S, GPU_LEASE_S) + 90
        wait_until(
            lambda: released(store),
            limit,
            "v1 released after the kill",
            lambda: [(r["name"], r["state_type"]) for r in flow_runs(url, flow="update-version")],
        )
        recovery_s = time.monotonic() - killed_at
        wait_until(
            lambda: all(r["state_type"] in FINAL_STATES for r in flow_runs(url, flow="version-update")),
            120,
            "the recovering run final (the main tail and the loss report run after the publish)",
            lambda: [(r["name"], r["state_type"]) for r in flow_runs(url)],
        )
        versions = flow_runs(url, flow="update-version")
        updates = flow_runs(url, deployment="version-update")

    print(f"released {recovery_s:.1f} s after the kill")
    by_id = {r["id"]: r for r in versions}
    assert by_id[dead["id"]]["state_type"] == "CRASHED"
    assert "no heartbeat" in by_id[dead["id"]]["state"]["message"]
    assert [r["state_type"] for r in versions] == ["CRASHED", "COMPLETED"]
    assert [r["name"] for r in versions] == ["v1-v1", "v1-v1"]
    assert [r["state_type"] for r in updates] == ["CRASHED", "COMPLETED"]
    assert store.exists(layout.recovery_marker(1, dead["id"]))
    assert [n for n in store.ls(layout.version_models(1)) if not n.endswith(".claim")] == ["r1"]
