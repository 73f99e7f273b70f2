"""Checkpoint folders: what they hold, that plain transformers loads them, that corruption is named."""

import json
import os
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segment_support import main_spec  # noqa: E402

from lrpath_core import layout  # noqa: E402
from lrpath_core.checkpoint import (  # noqa: E402
    MANIFEST,
    CheckpointError,
    CheckpointState,
    list_checkpoints,
    read_checkpoint,
    read_manifest,
    remove_incomplete,
)
from lrpath_core.layout import TOKENIZER  # noqa: E402
from lrpath_core.pipeline import main_lr_path  # noqa: E402
from lrpath_core.storage import sha256_file  # noqa: E402
from lrpath_core.train import run_segment  # noqa: E402


def test_checkpoint_loads_with_plain_transformers_and_holds_everything(ingested_store):
    store, cfg = ingested_store
    run_segment(store, main_spec(store, cfg, "checkpoints/load", 10))
    folder = Path(store.root) / "checkpoints/load/step-00000010"
    names = sorted(os.listdir(folder))
    assert names == sorted(
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "optimizer.safetensors",
            "rng.safetensors",
            "state.json",
            "manifest.json",
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(Path(store.root) / TOKENIZER)
    ids = tokenizer("the quick model", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape[-1] == model.config.vocab_size == len(tokenizer)
    state, tensors, optim, rng = read_checkpoint(store, "checkpoints/load/step-00000010")
    # the step is also the data position: the next batch of the stream to read
    assert state.step == 10 and state.lr_path == main_lr_path(cfg)
    assert "data_position" not in json.loads((folder / "state.json").read_text())
    assert set(optim["state"]) == set(tensors)  # AdamW moments for every parameter
    assert all(float(s["step"]) == 10 for s in optim["state"].values())
    assert "torch_cpu" in rng
    files = json.loads((folder / MANIFEST).read_text())["files"]
    assert files == {name: sha256_file(folder / name) for name in names if name != MANIFEST}
    assert list_checkpoints(store, "checkpoints/load") == [10]
    assert folder == Path(store.local_path(layout.checkpoint("checkpoints/load", 10)))


def test_flipped_byte_is_detected_and_named(ingested_store):
    store, cfg = ingested_store
    run_segment(store, main_spec(store, cfg, "checkpoints/flip", 5))
    path = Path(store.root) / "checkpoints/flip/step-00000005/optimizer.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors fails its sha256 check"):
        read_manifest(store, "checkpoints/flip/step-00000005")
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        run_segment(
            store,
            main_spec(store, cfg, "checkpoints/flip2", 8, start=5, init="checkpoints/flip/step-00000005"),
        )


def test_state_written_before_the_merge_of_step_and_data_position_still_reads():
    lr_path = {"kind": "main", "lr_max": 0.003, "lr_min": 0.0003}
    old = {"step": 7, "data_position": 7, "lr_path": lr_path, "data_hash": "d", "config_hash": "c"}
    state = CheckpointState.model_validate({**old, "param_groups": []})
    assert state.step == 7 and not hasattr(state, "data_position")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fsynced descriptors")
def test_every_file_the_folder_and_the_rename_are_fsynced(ingested_store, monkeypatch):
    store, cfg = ingested_store
    run_dir = Path(store.root).resolve() / "checkpoints/durable"
    final = run_dir / "step-00000002"
    synced: list[tuple[Path, bool]] = []  # (what was fsynced, was the folder renamed into place yet)
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append((Path(os.readlink(f"/proc/self/fd/{fd}")), final.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    run_segment(store, main_spec(store, cfg, "checkpoints/durable", 2, checkpoint_every=100))

    staging = {
        path for path, _ in synced if path.parent == run_dir and path.name.startswith(f"{final.name}.tmp-")
    }
    assert len(staging) == 1, synced
    staged = staging.pop()
    before_rename = {path for path, renamed in synced if not renamed}
    assert {staged / name for name in os.listdir(final)} <= before_rename  # every file, manifest included
    assert staged in before_rename  # the folder's entries
    assert (run_dir, True) in synced  # the rename itself, after it happened


def test_remove_incomplete_keeps_folders_moved_aside_as_corrupt(tmp_path):
    from lrpath_core.storage import Store

    store = Store(str(tmp_path))
    run = tmp_path / "checkpoints/run"
    for name in (
        "step-00000004.corrupt-20260101T000000000000Z",
        "step-00000005.tmp-abcd1234",
        "step-00000006",
    ):
        (run / name).mkdir(parents=True)
        (run / name / "model.safetensors").write_bytes(b"x")
    (run / "step-00000004.corrupt-20260101T000000000000Z" / MANIFEST).write_text("{}")
    (run / "step-00000008").mkdir()
    (run / "step-00000008" / MANIFEST).write_text("{}")

    removed = remove_incomplete(store, "checkpoints/run")
    assert sorted(removed) == ["step-00000005.tmp-abcd1234", "step-00000006"]
    assert sorted(p.name for p in run.iterdir()) == [
        "step-00000004.corrupt-20260101T000000000000Z",
        "step-00000008",
    ]
    assert list_checkpoints(store, "checkpoints/run") == [8]


@pytest.mark.parametrize("damage", ["zeroed file", "missing file", "empty manifest"])
def test_a_damaged_manifest_or_file_is_a_checkpoint_error(ingested_store, damage):
    store, cfg = ingested_store
    run_segment(store, main_spec(store, cfg, "checkpoints/damaged", 2, checkpoint_every=100))
    folder = Path(store.root) / "checkpoints/damaged/step-00000002"
    if damage == "zeroed file":
        model = folder / "model.safetensors"
        model.write_bytes(bytes(model.stat().st_size))
        expected = r"model\.safetensors fails its sha256 check"
    elif damage == "missing file":
        (folder / "rng.safetensors").unlink()
        expected = r"rng\.safetensors is missing"
    else:
        (folder / MANIFEST).write_bytes(b"")
        expected = r"manifest\.json is unreadable"
    with pytest.raises(CheckpointError, match=expected):
        read_manifest(store, "checkpoints/damaged/step-00000002")
