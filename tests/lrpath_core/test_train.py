"""The trainer (``run_segment`` and its torchrun entry point): golden losses, resume, DDP/FSDP, LR paths."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segment_support import Interrupted, interrupt_at, main_spec, sha  # noqa: E402

from lrpath_core.checkpoint import (  # noqa: E402
    CheckpointError,
    list_checkpoints,
    read_checkpoint,
    remove_incomplete,
)
from lrpath_core.schedules import LRPath  # noqa: E402
from lrpath_core.segment import SegmentError  # noqa: E402
from lrpath_core.train import run_segment  # noqa: E402

GOLDEN = Path(__file__).parents[1] / "golden" / "tiny_main_losses.json"


def test_loss_curve_matches_the_golden_file(ingested_store):
    store, cfg = ingested_store
    result = run_segment(store, main_spec(store, cfg, "checkpoints/golden", 12, checkpoint_every=100))
    losses = [loss for _, loss, _ in result.losses]
    assert result.steps_run == 12 and len(losses) == 12
    assert losses[-1] < losses[0] - 0.5, "the tiny model must learn within 12 steps"
    if os.environ.get("LRPATH_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(losses, indent=1))
    golden = json.loads(GOLDEN.read_text())
    assert losses == pytest.approx(golden, rel=1e-4)


def test_segment_refuses_inconsistent_specs(ingested_store):
    store, cfg = ingested_store
    run_segment(store, main_spec(store, cfg, "checkpoints/a", 5))
    with pytest.raises(SegmentError, match="is at step 5, but segment checkpoints/b needs step 7"):
        run_segment(
            store, main_spec(store, cfg, "checkpoints/b", 9, start=7, init="checkpoints/a/step-00000005")
        )
    with pytest.raises(SegmentError, match="fill only 55 steps"):
        run_segment(store, main_spec(store, cfg, "checkpoints/c", 60))
    with pytest.raises(CheckpointError, match="missing or incomplete"):
        run_segment(
            store, main_spec(store, cfg, "checkpoints/d", 9, start=7, init="checkpoints/none/step-00000007")
        )


def test_resume_after_a_finished_segment_runs_nothing(ingested_store):
    store, cfg = ingested_store
    first = run_segment(store, main_spec(store, cfg, "checkpoints/again", 10))
    second = run_segment(store, main_spec(store, cfg, "checkpoints/again", 10))
    assert first.steps_run == 10 and second.steps_run == 0 and second.resumed_from == 10
    assert [round(x[1], 6) for x in second.losses] == [round(x[1], 6) for x in first.losses]


def _train_cmd(store_url: str, spec_path: Path, result: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lrpath_core.train",
        "--store",
        store_url,
        "--spec",
        str(spec_path),
        "--result",
        str(result),
        "--threads",
        "1",
    ]


def test_sigkill_mid_segment_then_resume_gives_byte_identical_weights(ingested_store, tmp_path):
    store, cfg = ingested_store
    end = 40
    spec_killed = main_spec(store, cfg, "checkpoints/killed", end, checkpoint_every=4)
    spec_clean = main_spec(store, cfg, "checkpoints/clean", end, checkpoint_every=4)
    for name, spec in (("killed", spec_killed), ("clean", spec_clean)):
        (tmp_path / f"{name}.json").write_text(spec.model_dump_json())

    proc = subprocess.Popen(_train_cmd(store.url, tmp_path / "killed.json", tmp_path / "killed-result.json"))
    run_dir = Path(store.root) / "checkpoints/killed"
    deadline = time.time() + 120
    while time.time() < deadline:
        # step-???????? leaves out the staging folders (step-XXXXXXXX.tmp-…), which hold a manifest
        # just before they are renamed into place
        done = (
            sorted(p.name for p in run_dir.glob("step-????????") if (p / "manifest.json").exists())
            if run_dir.exists()
            else []
        )
        if done and done[-1] >= "step-00000012":
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / f"step-{end:08d}").exists(), "killed too late to test a resume"

    resumed = subprocess.run(
        _train_cmd(store.url, tmp_path / "killed.json", tmp_path / "killed-result.json"),
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = subprocess.run(
        _train_cmd(store.url, tmp_path / "clean.json", tmp_path / "clean-result.json"),
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert clean.returncode == 0, clean.stderr[-2000:]

    result = json.loads((tmp_path / "killed-result.json").read_text())
    assert result["resumed_from"] is not None and 12 <= result["resumed_from"] < end
    final_killed = Path(store.root) / f"checkpoints/killed/step-{end:08d}"
    final_clean = Path(store.root) / f"checkpoints/clean/step-{end:08d}"
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert sha(final_killed / name) == sha(final_clean / name), name
    clean_losses = json.loads((tmp_path / "clean-result.json").read_text())["losses"]
    assert result["losses"] == clean_losses
    leftovers = [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun"
)
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_process_torchrun_matches_one_process_loss_curve(ingested_store, tmp_path, parallel):
    store, cfg = ingested_store
    one = run_segment(store, main_spec(store, cfg, "checkpoints/one", 8, checkpoint_every=100))
    spec = main_spec(store, cfg, "checkpoints/two", 8, checkpoint_every=100, parallel=parallel)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "lrpath_core.train",
            "--store",
            store.url,
            "--spec",
            str(tmp_path / "spec.json"),
            "--result",
            str(tmp_path / "result.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "result.json").read_text())
    one_losses = [loss for _, loss, _ in one.losses]
    two_losses = [loss for _, loss, _ in two["losses"]]
    assert len(two_losses) == 8
    assert two_losses == pytest.approx(one_losses, rel=1e-4, abs=1e-5)
    a = read_checkpoint(store, "checkpoints/one/step-00000008")[1]
    b = read_checkpoint(store, "checkpoints/two/step-00000008")[1]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_branch_lr_path_is_followed_step_by_step(ingested_store):
    store, cfg = ingested_store
    run_segment(store, main_spec(store, cfg, "checkpoints/main", 10))
    o = cfg.optimizer
    branch = LRPath(kind="branch", lr_max=o.lr_max, lr_min=o.lr_min, start_step=10, length=6, shape="1-sqrt")
    spec = main_spec(
        store, cfg, "checkpoints/branch", 16, start=10, init="checkpoints/main/step-00000010"
    ).model_copy(update={"lr_path": branch})
    result = run_segment(store, spec)
    assert [lr for _, _, lr in result.losses] == pytest.approx([branch.lr(s) for s in range(10, 16)])
    assert result.losses[0][2] == o.lr_max and result.losses[-1][2] == pytest.approx(o.lr_min)


def test_the_two_newest_checkpoints_stay_while_a_segment_runs_and_kept_steps_always(
    ingested_store, one_torch_thread
):
    store, cfg = ingested_store
    run = "checkpoints/keep-two"
    seen: dict[int, list[int]] = {}

    def progress(done: int, end: int, loss: float, lr: float) -> None:
        seen[done] = list_checkpoints(store, run)  # before the checkpoint of step ``done`` is written

    run_segment(store, main_spec(store, cfg, run, 12, checkpoint_every=2, save_at=[5, 12]), progress)
    assert seen[3] == [2]
    assert seen[5] == [2, 4]  # a fallback for a newest checkpoint that turns out corrupt
    assert seen[6] == [4, 5]
    assert seen[7] == [5, 6]  # 4 goes once 6 is durable
    assert seen[9] == [5, 6, 8]  # the kept step 5 is never pruned
    # finished: only the kept steps stay, so that no resume checkpoint is later taken for a fork point
    assert list_checkpoints(store, run) == [5, 12]


def test_a_corrupt_newest_checkpoint_is_moved_aside_and_the_one_before_gives_the_same_bytes(
    ingested_store, one_torch_thread, caplog
):
    store, cfg = ingested_store
    spec = main_spec(store, cfg, "checkpoints/cut", 12, checkpoint_every=3)
    with pytest.raises(Interrupted):
        run_segment(store, spec, interrupt_at(10))
    run_dir = Path(store.root) / "checkpoints/cut"
    model = run_dir / "step-00000009/model.safetensors"
    zeros = bytes(model.stat().st_size)
    model.write_bytes(zeros)  # a power cut: the manifest made it to the disk, the data did not

    with caplog.at_level(logging.WARNING, logger="lrpath_core"):
        resumed = run_segment(store, spec)
    assert resumed.resumed_from == 6 and resumed.steps_run == 6
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "step-00000009" in warning and "model.safetensors fails its sha256 check" in warning
    aside = [p for p in run_dir.iterdir() if p.name.startswith("step-00000009.corrupt-")]
    assert len(aside) == 1 and (aside[0] / "model.safetensors").read_bytes() == zeros
    assert remove_incomplete(store, "checkpoints/cut") == [] and aside[0].exists()  # kept for inspection

    clean = run_segment(store, main_spec(store, cfg, "checkpoints/uncut", 12, checkpoint_every=3))
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert sha(run_dir / "step-00000012" / name) == sha(
            Path(store.root) / "checkpoints/uncut/step-00000012" / name
        )
    assert resumed.losses == clean.losses
