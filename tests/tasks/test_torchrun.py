"""A segment under torchrun from a task (``tasks.torchrun``): numbers, progress, failure, stopping."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrpath_core.processes import descendants

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segment_support import main_spec  # noqa: E402

from lrpath_core.config import ComputeConfig, ModelConfig  # noqa: E402
from lrpath_core.devices import hold_devices  # noqa: E402
from lrpath_core.train import run_segment  # noqa: E402
from tasks import torchrun  # noqa: E402

pytestmark = pytest.mark.skipif(
    not Path(sys.executable).with_name("torchrun").exists(), reason="no torchrun next to python"
)


def training_processes() -> list[int]:
    """Pids of live processes whose command line runs ``lrpath_core.train`` (torchrun and its ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"lrpath_core.train" in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def ranks_now() -> int:
    """Ranks of the torchrun this process runs now (torchrun's descendants)."""
    return sum(len(descendants(pid)) for pid in list(torchrun._LIVE))


def slow_spec(store, cfg, run: str):
    """Every step the data fill (54), on the ``small`` model: far longer than a test waits for it."""
    spec = main_spec(store, cfg, run, 54, checkpoint_every=1000)
    return spec.model_copy(update={"model": ModelConfig(preset="small")})


def test_two_ranks_match_one_process_and_report_progress(ingested_store, tmp_path, one_torch_thread):
    store, cfg = ingested_store
    one = run_segment(store, main_spec(store, cfg, "checkpoints/one", 6, checkpoint_every=100))
    compute = ComputeConfig(devices="cpu:0,cpu:1", lock_dir=str(tmp_path / "locks"))
    rows, ranks = [], []

    def progress(done: int, end: int, loss: float, lr: float) -> None:
        rows.append((done, end))
        ranks.append(ranks_now())

    with hold_devices(compute, 2) as lease:
        spec = main_spec(store, cfg, "checkpoints/two", 6, checkpoint_every=100)
        two = torchrun.TorchrunSegment(lease, "ddp")(store, spec, progress)
    assert rows == [(done, 6) for done in range(1, 7)]
    assert max(ranks) == 2  # two training processes under torchrun
    assert [loss for _, loss, _ in two.losses] == pytest.approx([loss for _, loss, _ in one.losses], rel=1e-4)
    assert two.checkpoints[6].url.endswith("checkpoints/two/step-00000006")


def test_a_failing_rank_is_an_error_naming_the_segment_with_its_log_tail(ingested_store, tmp_path):
    store, cfg = ingested_store
    compute = ComputeConfig(devices="cpu:0,cpu:1", lock_dir=str(tmp_path / "locks"))
    spec = main_spec(store, cfg, "checkpoints/too-long", 100_000)  # more steps than the data fill
    with hold_devices(compute, 2) as lease, pytest.raises(torchrun.TorchrunError) as failed:
        torchrun.TorchrunSegment(lease, "ddp")(store, spec, None)
    text = str(failed.value)
    assert "segment checkpoints/too-long (steps 0-100000) failed under torchrun on cpu:0,cpu:1" in text
    assert "exit code" in text and "fill only" in text  # the rank's SegmentError, from the log tail


def test_an_exception_in_the_task_stops_torchrun_and_every_rank(ingested_store, tmp_path):
    store, cfg = ingested_store
    compute = ComputeConfig(devices="cpu:0,cpu:1", lock_dir=str(tmp_path / "locks"))

    class Cancelled(Exception):
        pass

    def cancel_at_step_2(done: int, end: int, loss: float, lr: float) -> None:
        if done == 2:
            assert ranks_now() == 2
            raise Cancelled  # what a task cancellation or timeout raises inside the task's thread

    spec = slow_spec(store, cfg, "checkpoints/cancelled")
    started = time.monotonic()
    with hold_devices(compute, 2) as lease, pytest.raises(Cancelled):
        torchrun.TorchrunSegment(lease, "ddp")(store, spec, cancel_at_step_2)
    deadline = time.monotonic() + 10
    while training_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert training_processes() == [], "training processes outlived the cancelled task"
    assert time.monotonic() - started < 60


LAUNCHER = """
import sys
from lrpath_core.config import ComputeConfig
from lrpath_core.devices import hold_devices
from lrpath_core.segment import SegmentSpec
from lrpath_core.storage import Store
from tasks.torchrun import TorchrunSegment
spec = SegmentSpec.model_validate_json(open(sys.argv[2]).read())
def progress(done, end, loss, lr):
    if done == 2:
        print("TRAINING", flush=True)
with hold_devices(ComputeConfig(devices="cpu:0,cpu:1", lock_dir=sys.argv[3]), 2) as lease:
    TorchrunSegment(lease, "ddp")(Store(sys.argv[1]), spec, progress)
"""


def test_ranks_end_by_themselves_when_the_launcher_is_killed(ingested_store, tmp_path):
    """SIGKILL of the flow run's process leaves nobody to stop the group: the ranks' watchdog does."""
    store, cfg = ingested_store
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(slow_spec(store, cfg, "checkpoints/orphan").model_dump_json())
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, store.url, str(spec_path), str(tmp_path / "locks")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert launcher.stdout is not None and launcher.stdout.readline().strip() == "TRAINING"
        assert len(training_processes()) >= 3  # torchrun and its two ranks
    finally:
        launcher.kill()
        launcher.wait()
    deadline = time.monotonic() + 10
    while training_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = training_processes()
    for pid in left:  # clean up before failing, so later tests are not slowed down
        os.kill(pid, 9)
    assert left == [], "ranks outlived their killed launcher"
