"""One drop, ``lrpath.data.arrived`` five times (three at once), a real server and worker: one run trains.

The first event comes through the announcement marker (as from the watcher or the relay); the other
four skip it, as a second watcher host or a replayed notification would, so only the deployment's
``CANCEL_NEW`` stands between them and a queue of runs. A sixth announcement through the marker,
at the same time, emits nothing.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deployments.stack import local_stack
from lrpath_core import announce, layout
from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import FINAL_STATES, flow_runs, wait_until  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]

CANCELLED_BY_LIMIT = "Deployment concurrency limit reached."


def states(api_url: str) -> list[tuple[str, str]]:
    return [(r["name"], r["state_type"]) for r in flow_runs(api_url, deployment="version-update")]


def test_one_drop_emitted_five_times_three_at_once_is_trained_by_one_run(
    tmp_path, monkeypatch, synthetic_sources, make_config
):
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")
    monkeypatch.setenv("PREFECT_WORKER_PREFETCH_SECONDS", "1")
    monkeypatch.setenv("LRPATH_DEVICE_LOCKS", str(tmp_path / "device-locks"))  # this test's slots only
    store = Store(str(tmp_path / "store"))
    save_config(store, make_config(store.url))
    stage_incoming(store, synthetic_sources[0])
    source = store.url_of(layout.incoming_dir("v1"))

    with local_stack(
        tmp_path / "prefect", store.url, workers={"lrpath-gpu": 1}, deploy=["version-update"]
    ) as stack:
        url = stack.api_url
        time.sleep(2)  # let the trigger service load the new deployment's automation
        # The test holds the store's update lease: the first run stays Running (waiting for it)
        # while the duplicates arrive, as it would while it trains a long version.
        with store.lease(layout.UPDATE_LOCK):
            assert stack.announce(store.url, [source]) == ["v1"]  # 1: the watcher
            wait_until(
                lambda: [s for _, s in states(url)] == ["RUNNING"],
                90,
                "the first run Running",
                lambda: states(url),
            )
            stack.emit_arrived(store.url, "v1")  # 2: an emitter that skips the marker
            with ThreadPoolExecutor(4) as pool:  # 3, 4, 5 at once, and a relay's announcement with them
                raw = [pool.submit(stack.emit_arrived, store.url, "v1") for _ in range(3)]
                relay = pool.submit(stack.announce, store.url, [source])
                assert relay.result() == [], "the marker exists: a second announcement emits nothing"
                for future in raw:
                    future.result()
            wait_until(
                lambda: sorted(s for _, s in states(url)) == ["CANCELLED"] * 4 + ["RUNNING"],
                60,
                "four duplicate runs cancelled while the first one runs",
                lambda: states(url),
            )
        wait_until(
            lambda: all(s in FINAL_STATES for _, s in states(url)), 90, "every run final", lambda: states(url)
        )
        time.sleep(2)  # nothing else may come
        runs = flow_runs(url, deployment="version-update")
        versions = flow_runs(url, flow="update-version")

    assert len(runs) == 5, "five events, five runs: the relay's announcement emitted nothing"
    trained = [r for r in runs if r["state_type"] == "COMPLETED"]
    assert len(trained) == 1, [(r["name"], r["state_type"]) for r in runs]
    assert [r["state"]["message"] for r in runs if r["state_type"] == "CANCELLED"] == [CANCELLED_BY_LIMIT] * 4
    assert [(v["name"], v["state_type"]) for v in versions] == [("v1-v1", "COMPLETED")]
    assert announce.claimed_by(store, "v1") == trained[0]["id"]
    timeline = store.read_json(layout.TIMELINE)
    assert [len(v["releases"]) for v in timeline["versions"]] == [1]
    assert [n for n in store.ls(layout.version_models(1)) if not n.endswith(".claim")] == ["r1"]
