"""A real ``prefect server start`` (SQLite, 127.0.0.1) and a real process worker, end to end."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from deployments.stack import local_stack
from lrpath_core import layout
from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config

pytestmark = [pytest.mark.server, pytest.mark.slow]


def api_post(api_url: str, path: str, body: dict) -> list | dict:
    request = urllib.request.Request(
        f"{api_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_run(api_url: str, deployment: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    runs: list = []
    while time.time() < deadline:
        runs = api_post(api_url, "/flow_runs/filter", {"deployments": {"name": {"any_": [deployment]}}})
        finished = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
        if finished:
            return finished[0]
        time.sleep(1)
    raise AssertionError(
        f"no finished {deployment} run within {timeout}s; runs seen: {[r['state_type'] for r in runs]}"
    )


def test_event_triggers_the_deployment_and_a_worker_publishes_a_version(
    tmp_path, synthetic_sources, make_config
):
    store = Store(str(tmp_path / "store"))
    save_config(store, make_config(store.url))
    stage_incoming(store, synthetic_sources[0])

    with local_stack(
        tmp_path / "prefect", store.url, workers={"lrpath-gpu": 1}, deploy=["version-update"]
    ) as stack:
        deployments = api_post(stack.api_url, "/deployments/filter", {})
        assert [d["name"] for d in deployments] == ["version-update"]
        assert deployments[0]["work_pool_name"] == "lrpath-gpu"
        time.sleep(2)  # let the trigger service load the new deployment's automation
        stack.announce(store.url, [store.url_of(layout.incoming_dir("v1"))])
        run = wait_for_run(stack.api_url, "version-update", timeout=240)
        logs = "".join(p.read_text(errors="replace")[-3000:] for p in stack.logs if p.exists())
        assert run["state_type"] == "COMPLETED", logs
        assert run["parameters"]["store"] == store.url

    index = store.read_json("models/index.json")
    assert "1" in json.dumps(index) and store.exists("models/v1/r1/model.safetensors")
    assert store.exists("models/v1/r1/checksums.sha256")
