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
