"""Faults a platform team meets: a killed update, two updates at once (real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.timeline import paradigm_steps
from lrpath_core.timeline_store import require_timeline, save_config

pytestmark = pytest.mark.slow
LRPATH = str(Path(sys.executable).with_name("lrpath"))


def prepared_store(root: Path, source: str, make_config) -> Store:
    store = Store(str(root))
    save_config(store, make_config(store.url))
    stage_incoming(store, source)
    return store


STEP_COUNTER = """
import os
import lrpath_core.train_step as module
step = module.train_step
def counted(*args, **kwargs):  # one line per optimizer step this process runs, whatever the segment
    with open(os.environ["LRPATH_TEST_STEP_LOG"], "a") as log:
        log.write(f"{os.getpid()}\\n")
    return step(*args, **kwargs)
module.train_step = counted
"""


def count_steps_in(env: dict[str, str], folder: Path) -> Path:
    """Make every ``lrpath`` started with ``env`` log each optimizer step it runs to a file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(STEP_COUNTER)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    env["LRPATH_TEST_STEP_LOG"] = str(folder / "steps.log")
    return folder / "steps.log"


def update(store: Store, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **(env or {}), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [LRPATH, "update", "--store", store.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def published_sha(store: Store) -> str:
    return hashlib.sha256(store.read_bytes("models/v1/r1/model.safetensors")).hexdigest()


@pytest.fixture(scope="module")
def unbroken_run(tmp_path_factory, synthetic_sources, make_config) -> tuple[str, int]:
    """The sha of an unbroken run's release and its version's end step."""
    clean = prepared_store(tmp_path_factory.mktemp("clean"), synthetic_sources[0], make_config)
    proc = update(clean)
    assert proc.wait(300) == 0, proc.stdout.read()[-3000:]
    return published_sha(clean), require_timeline(clean).version(1).cumulative_steps


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"update ended before {path} appeared:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {timeout}s")


@pytest.mark.parametrize(
    "milestone",
    [
        "cache/tokens",  # during ingest: a shard tokenized, the version's manifest not yet written
        "checkpoints/main/step-00000010/manifest.json",  # inside the main-path segment
        "checkpoints/branches",  # the branch has started
        "branch-end",  # the branch's last checkpoint: evaluation / publish / main tail under way
    ],
)
def test_sigkill_anywhere_then_update_again_gives_the_same_release(
    tmp_path, synthetic_sources, make_config, milestone, unbroken_run
):
    """A crash during publish itself is covered in test_publish.py (a failing move) and
    test_storage_outage.py: publishing takes milliseconds here, too short to aim a SIGKILL at."""
    store = prepared_store(tmp_path / "killed", synthetic_sources[0], make_config)
    unbroken_release_sha, end = unbroken_run
    if milestone == "branch-end":
        milestone = f"checkpoints/branches/v1-cosine-a0.18/step-{end:08d}/manifest.json"
    proc = update(store)
    wait_for(Path(store.root) / milestone, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert not store.exists("models/v1/r1/checksums.sha256"), "killed too late"

    again = update(store)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    assert published_sha(store) == unbroken_release_sha
    timeline = require_timeline(store)
    assert timeline.version(1).status == "released"
    planned = paradigm_steps(timeline.plans())["path_switching"]
    assert timeline.steps_run.main + timeline.steps_run.branch == planned, (
        "a resumed segment counts once, in full"
    )
    leftovers = [p for p in Path(store.root).rglob("*") if ".tmp-" in p.name or p.name == ".staging"]
    assert leftovers == []


def test_two_updates_at_once_are_serialized(tmp_path, synthetic_sources, make_config):
    store = prepared_store(tmp_path / "store", synthetic_sources[0], make_config)
    env: dict[str, str] = {}
    step_log = count_steps_in(env, tmp_path / "counter")
    first, second = update(store, env), update(store, env)
    outputs = [p.communicate(timeout=400)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, "\n".join(o[-2000:] for o in outputs)
    assert any("another version update" in o and "waiting" in o for o in outputs)
    timeline = require_timeline(store)
    assert len(timeline.versions) == 1 and len(timeline.version(1).releases) == 1
    planned = paradigm_steps(timeline.plans())["path_switching"]
    assert timeline.steps_run.main + timeline.steps_run.branch == planned
    executed = step_log.read_text().splitlines()
    assert len(executed) == planned, (
        f"{len(executed)} optimizer steps ran for {planned} planned: none may run twice"
    )
    assert len(set(executed)) == 1, (
        "one of the two updates trained everything, the other waited and found it done"
    )
    assert json.loads(store.read_text("timeline.json"))["generation"] >= 1


def test_a_held_drop_fails_the_update_clearly_after_releasing_what_it_can(
    tmp_path, synthetic_sources, make_config
):
    from flows.version_update import version_update
    from lrpath_core.ingest import DropRejected

    store = prepared_store(tmp_path / "store", synthetic_sources[0], make_config)
    bad = Path(store.root) / "incoming" / "v2"
    bad.mkdir(parents=True)
    (bad / "broken.txt").write_bytes(b"\x00\x00 not text")
    (bad / "_READY").write_text("")
    with pytest.raises(DropRejected, match="broken.txt"):
        version_update(store=store.url)
    timeline = require_timeline(store)
    assert [v.name for v in timeline.versions] == ["v1"] and timeline.version(1).status == "released"
    assert store.exists("quarantine/v2/broken.txt.reason.txt")
