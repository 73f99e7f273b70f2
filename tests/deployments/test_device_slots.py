"""Device slots and torchrun on a real Prefect server with a worker (SQLite), CPU stand-ins for GPUs.

One server and one ``lrpath-gpu`` worker serve every test of this module; each flow run gets its
device slots, ``nproc`` and a lock folder of its own through the run's job variables (``env``),
as a Docker or Kubernetes pool template would set them.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from deployments import api
from deployments.api import call  # tries a busy SQLite server's 503 again
from deployments.stack import local_stack
from lrpath_core import layout
from lrpath_core.devices import host_cores
from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config

pytestmark = [pytest.mark.server, pytest.mark.slow]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect")
    with local_stack(
        home, str(home / "unused-store"), workers={"lrpath-gpu": 1}, deploy=["version-update"]
    ) as s:
        api.ensure_limit(s.api_url, "gpu", 2)  # workers × device slots, as `lrpath server up` sets it
        yield s


@pytest.fixture(scope="module")
def one_slot(stack, tmp_path_factory, synthetic_sources, make_config) -> Store:
    """Version 1 released with one slot and nproc 1: the serial run, and the nproc 2 run's reference."""
    root = tmp_path_factory.mktemp("one-slot")
    store = new_store(root, "one", synthetic_sources[0], make_config)
    update(stack, store, root / "locks", LRPATH_DEVICES="cpu:0")
    return store


def new_store(root: Path, name: str, source: str, make_config, **overrides) -> Store:
    store = Store(str(root / name))
    save_config(store, make_config(store.url, **overrides))
    stage_incoming(store, source)
    return store


def start_update(stack, store: Store, locks: Path, **env: str) -> str:
    """A ``version-update`` run of ``store`` with ``LRPATH_*`` env for its flow run process."""
    deployment = call(stack.api_url, "GET", "/deployments/name/version-update/version-update")[1]
    job_env = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TOKENIZERS_PARALLELISM": "false",
        "LRPATH_DEVICE_LOCKS": str(locks),
        **env,
    }
    body = {"parameters": {"store": store.url}, "job_variables": {"env": job_env}}
    return call(stack.api_url, "POST", f"/deployments/{deployment['id']}/create_flow_run", body)[1]["id"]


def wait_final(stack, run_id: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = call(stack.api_url, "GET", f"/flow_runs/{run_id}")[1]
        if run["state_type"] in FINAL:
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish within {timeout} s")


def update(stack, store: Store, locks: Path, **env: str) -> None:
    run = wait_final(stack, start_update(stack, store, locks, **env), 150)
    assert run["state_type"] == "COMPLETED", run["state"]


def task_runs(stack, store: Store) -> dict[str, dict]:
    """The task runs of the store's ``update-version`` subflow runs, by name."""
    body = {"flow_runs": {"tags": {"all_": [f"store:{store.url}"]}}}
    subflows = call(stack.api_url, "POST", "/flow_runs/filter", body)[1]
    body = {"flow_runs": {"id": {"any_": [run["id"] for run in subflows]}}}
    return {run["name"]: run for run in call(stack.api_url, "POST", "/task_runs/filter", body)[1]}


def logs_of(stack, run: dict) -> str:
    body = {"logs": {"task_run_id": {"any_": [run["id"]]}}, "limit": 200}
    return "\n".join(row["message"] for row in call(stack.api_url, "POST", "/logs/filter", body)[1])


def span(run: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(run["start_time"]), datetime.fromisoformat(run["end_time"])


def test_two_slots_overlap_branch_and_tail_one_slot_serializes_them(
    stack, one_slot, tmp_path, synthetic_sources, make_config
):
    one = one_slot
    two = new_store(tmp_path, "two", synthetic_sources[0], make_config)
    # one run at a time: the deployment cancels a run that arrives while another runs (CANCEL_NEW)
    update(stack, two, tmp_path / "locks-two", LRPATH_DEVICES="cpu:0,cpu:1")
    assert two.exists("models/v1/r1/model.safetensors") and one.exists("models/v1/r1/model.safetensors")

    side = task_runs(stack, two)
    branch, tail = side["branch-v1"], side["main-v1-to-end"]
    (b0, b1), (t0, t1) = span(branch), span(tail)
    assert b0 < t1 and t0 < b1, f"branch {b0}..{b1} and main tail {t0}..{t1} must overlap on two slots"
    logged = {logs_of(stack, branch), logs_of(stack, tail)}
    # each holds a slot of its own, with the host's cores split over the two slots
    half = max(1, host_cores() // 2)  # the worker inherits this environment
    assert all(f" ({half} torch threads, in-process)" in text for text in logged), logged
    devices = sorted(text.split(" trains on ")[1][:5] for text in logged)
    assert devices == ["cpu:0", "cpu:1"], logged

    serial = task_runs(stack, one)
    branch, tail = serial["branch-v1"], serial["main-v1-to-end"]
    (b0, b1), (t0, t1) = span(branch), span(tail)
    assert b1 <= t0, f"one slot: the branch ({b0}..{b1}) must end before the main tail ({t0}..{t1}) starts"
    cores = host_cores()
    for run in (branch, tail):
        assert f"trains on cpu:0 ({cores} torch threads, in-process)" in logs_of(stack, run)  # no halving
    assert span(serial["publish-v1"])[1] <= t0, "one slot: the release comes before the main tail"


def training_processes(store: Store) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"lrpath_core.train" in cmdline and store.url.encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def test_nproc_2_through_the_worker_matches_nproc_1(
    stack, one_slot, tmp_path, synthetic_sources, make_config
):
    one = one_slot
    two = new_store(tmp_path, "two", synthetic_sources[0], make_config)
    update(stack, two, tmp_path / "locks-two", LRPATH_NPROC="2", LRPATH_DEVICES="cpu:0,cpu:1")
    assert two.exists("models/v1/r1/model.safetensors")
    for run in (layout.MAIN_RUN, layout.branch_run(1, "cosine", 0.18)):
        a, b = one.read_json(layout.losses(run)), two.read_json(layout.losses(run))
        assert [row[0] for row in a] == [row[0] for row in b]
        assert [row[1] for row in b] == pytest.approx([row[1] for row in a], rel=1e-4), run
    text = logs_of(stack, task_runs(stack, two)["branch-v1"])
    assert "torchrun --nproc-per-node 2, ddp" in text
    assert "rank 0/2 on cpu" in text and "rank 1/2 on cpu" in text  # two processes trained it


def test_cancelling_an_nproc_2_run_leaves_no_training_process(
    stack, tmp_path, synthetic_sources, make_config
):
    slow = new_store(tmp_path, "slow", synthetic_sources[0], make_config, **{"model.preset": "small"})
    devices = {"LRPATH_DEVICES": "cpu:0,cpu:1"}
    run_slow = start_update(stack, slow, tmp_path / "locks-slow", LRPATH_NPROC="2", **devices)
    deadline = time.time() + 120
    while len(training_processes(slow)) < 3 and time.time() < deadline:  # torchrun and two ranks
        time.sleep(0.5)
    assert len(training_processes(slow)) >= 3, "the slow run never started training"
    cancel = {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}
    call(stack.api_url, "POST", f"/flow_runs/{run_slow}/set_state", cancel)
    cancelled = time.time()
    while training_processes(slow) and time.time() < cancelled + 10:
        time.sleep(0.2)
    assert training_processes(slow) == [], "training processes outlived the cancelled run by 10 s"
    assert wait_final(stack, run_slow, 60)["state_type"] in ("CANCELLED", "CRASHED", "FAILED")
