from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from publish_support import checkpoint_rel, hashes, local_copy, publish  # noqa: E402

from lrpath_core.checkpoint import CheckpointError  # noqa: E402
from lrpath_core.layout import MODEL_INDEX, MODEL_STAGING, revision_claim  # noqa: E402
from lrpath_core.lineage import Lineage  # noqa: E402
from lrpath_core.model_index import read_index  # noqa: E402
from lrpath_core.publish import PublishError, publish_version  # noqa: E402
from lrpath_core.published import CHECKSUMS, parse_checksums, verify_published  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402


def test_published_version_loads_with_transformers(store, tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"relative_cost": {"path_switching": 0.62, "ptfs": 1.0, "cpt": 0.5}}
    release = publish(store, tiny_run, version=2, lineage_extra=extra, code_version="test")
    assert (release.revision, release.url) == (1, store.url_of("models/v2/r1"))
    assert release.metrics == tiny_run.timeline.version(2).metrics
    entry = read_index(store).get(2, 1)
    assert entry.release() == release
    verify_published(store, 2, 1)
    assert store.ls(MODEL_STAGING) == []

    names = set(store.walk_files("models/v2/r1"))
    assert names == {
        "README.md",
        "checksums.sha256",
        "config.json",
        "generation_config.json",
        "lineage.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    listed = parse_checksums(store.read_text(f"models/v2/r1/{CHECKSUMS}"))
    assert set(listed) == names - {CHECKSUMS}
    assert listed == {n: h for n, h in hashes(store, "models/v2/r1").items() if n != CHECKSUMS}

    folder = local_copy(store, release, 2, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    record = tiny_run.timeline.version(2)
    expected = load_file(
        str(tiny_run.root / checkpoint_rel(tiny_run, record.branch_checkpoint) / "model.safetensors")
    )
    state = model.state_dict()
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tokenizer.decode(tokenizer("the morning")["input_ids"]) == "the morning"
    with torch.no_grad():
        assert model(**tokenizer("the", return_tensors="pt")).logits.shape[-1] == model.config.vocab_size

    lineage = Lineage.model_validate_json(store.read_bytes("models/v2/r1/lineage.json"))
    assert [(d.version, d.name) for d in lineage.data] == [(1, "v1"), (2, "v2")]
    assert [d.data_sha256 for d in lineage.data] == [v.data_sha256 for v in tiny_run.timeline.versions]
    assert lineage.fork_checkpoint.manifest_sha256 == record.fork_checkpoint.sha256
    assert lineage.fork_checkpoint.step == record.fork_step
    assert lineage.branch_checkpoint.manifest_sha256 == record.branch_checkpoint.sha256
    assert lineage.config_hash == tiny_run.timeline.config_hash
    assert lineage.tokenizer_sha256 == tiny_run.timeline.tokenizer
    assert (lineage.code_version, lineage.decay, lineage.alpha) == ("test", "cosine", tiny_run.timeline.alpha)
    assert (lineage.fork_step, lineage.branch_steps) == (record.fork_step, record.branch_steps)
    assert lineage.main_lr_path.kind == "main" and lineage.main_lr_path.warmup_steps == 5

    card = store.read_text("models/v2/r1/README.md")
    assert "library_name: transformers" in card
    assert "cosine decay" in card and f"over B = {record.branch_steps} steps" in card
    assert f"fork step {record.fork_step}" in card
    assert "AutoModelForCausalLM.from_pretrained" in card
    assert "| 1 | v1 |" in card and "| 2 | v2 |" in card
    assert f"{record.metrics['ppl_v1']:.3f}" in card and f"{record.metrics['ppl']:.3f}" in card
    assert "Relative cost" in card and "path_switching 0.620, ptfs 1.000, cpt 0.500" in card


def test_crash_mid_publish_leaves_nothing_visible(store, tiny_run, monkeypatch):
    original = Store.place
    calls = []

    def crash_on_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("simulated crash while moving files into place")
        original(*args)

    monkeypatch.setattr(Store, "place", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        publish(store, tiny_run)
    partial = store.ls("models/v1/r1")
    assert len(partial) == 2 and CHECKSUMS not in partial and store.exists(revision_claim(1, 1))
    assert read_index(store).revisions(1) == []
    assert not store.exists(MODEL_INDEX) or "1" not in store.read_json(MODEL_INDEX)["versions"]
    with pytest.raises(PublishError, match="version 1 revision 1 is not published"):
        verify_published(store, 1, 1)
    assert store.ls(MODEL_STAGING) == []

    monkeypatch.setattr(Store, "place", original)
    release = publish(store, tiny_run)
    # the version's lease proves the leftover dead on every store kind, and its claim names this
    # very publish: the same revision is resumed, no number is skipped
    assert release.revision == 1
    verify_published(store, 1, release.revision)
    assert [r.revision for r in read_index(store).revisions(1)] == [release.revision]


def test_publish_refuses_a_checkpoint_that_is_not_the_described_branch(store, tiny_run):
    record = tiny_run.timeline.version(1)
    url = store.url_of(checkpoint_rel(tiny_run, record.branch_checkpoint))
    common = {"alpha": tiny_run.timeline.alpha, "metrics": {}}
    with pytest.raises(PublishError, match="decay shape is 'cosine', not 'linear'"):
        publish_version(
            store,
            1,
            url,
            decay="linear",
            fork_step=record.fork_step,
            branch_steps=record.branch_steps,
            **common,
        )
    fork = store.url_of(checkpoint_rel(tiny_run, record.fork_checkpoint))
    with pytest.raises(PublishError, match="LR path is 'main', not 'branch'"):
        publish_version(
            store,
            1,
            fork,
            decay="cosine",
            fork_step=record.fork_step,
            branch_steps=record.branch_steps,
            **common,
        )
    assert not store.exists(MODEL_INDEX)


def test_a_corrupt_checkpoint_is_not_published(store, tiny_run):
    rel = f"{checkpoint_rel(tiny_run, tiny_run.timeline.version(1).branch_checkpoint)}/model.safetensors"
    data = bytearray(store.read_bytes(rel))
    data[-1] ^= 0x01
    store.write_bytes(rel, bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors fails its sha256 check"):
        publish(store, tiny_run)
    assert read_index(store).revisions(1) == []
    assert store.ls("models/v1") == [] and store.ls(MODEL_STAGING) == []
