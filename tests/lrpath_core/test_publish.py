from __future__ import annotations

import hashlib
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402

from lrpath_core import publish  # noqa: E402
from lrpath_core.checkpoint import CheckpointError  # noqa: E402
from lrpath_core.config import load_config  # noqa: E402
from lrpath_core.pipeline import run_branch, run_timeline  # noqa: E402
from lrpath_core.publish import (  # noqa: E402
    CHECKSUMS,
    INDEX,
    STAGING,
    Lineage,
    PublishError,
    download_published,
    parse_checksums,
    publish_version,
    read_index,
    verify_published,
)
from lrpath_core.storage import Store  # noqa: E402
from lrpath_core.synthetic import write_synthetic_versions  # noqa: E402
from lrpath_core.timeline import CheckpointRef, Release, Timeline  # noqa: E402

BUCKET = "lrpath-publish"
# a smaller model than the "tiny" preset: publishing does not care, and training stays fast on a busy machine
TINY = {
    "data.vocab_size": 512,
    "optimizer.warmup_steps": 5,
    "checkpoint_every": 10,
    "model.hidden_size": 32,
    "model.num_layers": 2,
    "model.num_heads": 2,
    "model.intermediate_size": 64,
}


@dataclass
class TinyRun:
    root: Path
    timeline: Timeline
    other_branch: CheckpointRef


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> TinyRun:
    """Two released versions and a second (1-sqrt) branch of version 1, on a local store."""
    base = tmp_path_factory.mktemp("publish-run")
    sources = write_synthetic_versions(str(base / "incoming"), versions=2, docs_per_version=400, seed=0)
    config = load_config(None, store=str(base / "store"), **TINY)
    store = Store(config.store)
    threads = torch.get_num_threads()
    # one thread: on a busy 2-core machine two OpenMP threads stall each other (~10x slower)
    torch.set_num_threads(1)
    try:
        timeline = run_timeline(store, config, sources)
        other, _, _ = run_branch(store, config, 1, decay="1-sqrt")
    finally:
        torch.set_num_threads(threads)
    return TinyRun(base / "store", timeline, other)


@pytest.fixture(scope="module")
def s3_endpoint():
    with servers.moto_s3_server() as endpoint:
        servers.create_bucket(endpoint, BUCKET)
        yield endpoint


def _needed(rel: Path) -> bool:
    return rel.parts[0] != "cache" and rel.suffix != ".npy"


@pytest.fixture(params=["local", "s3"])
def store(request, tiny_run, tmp_path, monkeypatch) -> Store:
    """A fresh store with the tiny run's tokenizer, data manifests and checkpoints (nothing published)."""
    if request.param == "local":
        root = tmp_path / "store"
        shutil.copytree(tiny_run.root, root, ignore=shutil.ignore_patterns("cache", "*.npy"))
        return Store(str(root))
    endpoint = request.getfixturevalue("s3_endpoint")
    for name, value in servers.s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    s3 = Store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")
    for path in sorted(tiny_run.root.rglob("*")):
        rel = path.relative_to(tiny_run.root)
        if path.is_file() and _needed(rel):
            s3.put_file(str(path), rel.as_posix())
    return s3


def _checkpoint_rel(run: TinyRun, ref: CheckpointRef) -> str:
    return Path(ref.url).relative_to(run.root).as_posix()


def _publish(store: Store, run: TinyRun, version: int = 1, decay: str = "cosine", **kwargs) -> Release:
    record = run.timeline.version(version)
    ref = record.branch_checkpoint if decay == "cosine" else run.other_branch
    return publish_version(
        store,
        version,
        store.url_of(_checkpoint_rel(run, ref)),
        decay=decay,
        alpha=run.timeline.alpha,
        fork_step=record.fork_step,
        branch_steps=record.branch_steps,
        metrics=record.metrics,
        **kwargs,
    )


def _hashes(store: Store, rel: str) -> dict[str, str]:
    return {
        name: hashlib.sha256(store.read_bytes(f"{rel}/{name}")).hexdigest() for name in store.walk_files(rel)
    }


def _local_copy(store: Store, release: Release, version: int, tmp_path: Path) -> str:
    if store.is_local:
        return release.url
    return download_published(store, version, release.revision, tmp_path / "download")


def test_published_version_loads_with_transformers(store, tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"relative_cost": {"path_switching": 0.62, "ptfs": 1.0, "cpt": 0.5}}
    release = _publish(store, tiny_run, version=2, lineage_extra=extra, code_version="test")
    assert (release.revision, release.url) == (1, store.url_of("models/v2/r1"))
    assert release.metrics == tiny_run.timeline.version(2).metrics
    entry = read_index(store).get(2, 1)
    assert entry.release() == release
    verify_published(store, 2, 1)
    assert store.ls(STAGING) == []

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
    assert listed == {n: h for n, h in _hashes(store, "models/v2/r1").items() if n != CHECKSUMS}

    folder = _local_copy(store, release, 2, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    record = tiny_run.timeline.version(2)
    expected = load_file(
        str(tiny_run.root / _checkpoint_rel(tiny_run, record.branch_checkpoint) / "model.safetensors")
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


def test_republish_is_idempotent_and_a_new_decay_is_a_new_revision(store, tiny_run):
    first = _publish(store, tiny_run)
    assert first.revision == 1
    before = _hashes(store, "models/v1/r1")
    again = _publish(store, tiny_run)
    assert again == first
    assert [r.revision for r in read_index(store).revisions(1)] == [1]

    other = _publish(store, tiny_run, decay="1-sqrt")
    assert (other.revision, other.decay) == (2, "1-sqrt")
    assert _hashes(store, "models/v1/r1") == before
    verify_published(store, 1, 1)
    verify_published(store, 1, 2)
    index = read_index(store)
    assert [(r.revision, r.decay) for r in index.revisions(1)] == [(1, "cosine"), (2, "1-sqrt")]
    assert index.get(1, 1).sha256 != index.get(1, 2).sha256
    assert _publish(store, tiny_run).revision == 1
    assert _publish(store, tiny_run, decay="1-sqrt").revision == 2
    assert store.ls("models/v1") == ["r1", "r2"]


def test_crash_mid_publish_leaves_nothing_visible(store, tiny_run, monkeypatch):
    original = publish._place_file
    calls = []

    def crash_on_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("simulated crash while moving files into place")
        original(*args)

    monkeypatch.setattr(publish, "_place_file", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _publish(store, tiny_run)
    partial = store.ls("models/v1/r1")
    assert len(partial) == 2 and CHECKSUMS not in partial
    assert read_index(store).revisions(1) == []
    assert not store.exists(INDEX) or "1" not in store.read_json(INDEX)["versions"]
    with pytest.raises(PublishError, match="version 1 revision 1 is not published"):
        verify_published(store, 1, 1)
    assert store.ls(STAGING) == []

    monkeypatch.setattr(publish, "_place_file", original)
    release = _publish(store, tiny_run)
    # local: the lock proves the leftover dead, so r1 is reused; object store: a fresh leftover may
    # be a live publish's copy, so it is skipped until STALE_AFTER_S
    assert release.revision == (1 if store.is_local else 2)
    verify_published(store, 1, release.revision)
    assert [r.revision for r in read_index(store).revisions(1)] == [release.revision]


def test_stale_leftovers_of_a_dead_publish_are_removed(store, tiny_run, monkeypatch):
    store.write_text(f"{STAGING}/v1-r1-{uuid.uuid4().hex}/model.safetensors", "half")
    store.write_text("models/v1/r1/config.json", "{}")
    monkeypatch.setattr(publish, "STALE_AFTER_S", 0.0)
    release = _publish(store, tiny_run)
    assert release.revision == 1
    verify_published(store, 1, 1)
    assert store.ls(STAGING) == []


def test_flipped_byte_is_named(store, tiny_run, tmp_path):
    _publish(store, tiny_run)
    rel = "models/v1/r1/model.safetensors"
    original = store.read_bytes(rel)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    store.write_bytes(rel, bytes(flipped))
    with pytest.raises(PublishError, match=r"model\.safetensors fails its sha256 check") as info:
        verify_published(store, 1, 1)
    assert "README.md" not in str(info.value)
    with pytest.raises(PublishError, match=r"model\.safetensors fails its sha256 check"):
        download_published(store, 1, 1, tmp_path / "download")
    store.write_bytes(rel, original)
    verify_published(store, 1, 1)

    store.write_text("models/v1/r1/extra.txt", "x")
    with pytest.raises(PublishError, match=r"extra\.txt is not listed"):
        verify_published(store, 1, 1)
    store.remove("models/v1/r1/extra.txt")
    store.write_bytes(f"models/v1/r1/{CHECKSUMS}", store.read_bytes(f"models/v1/r1/{CHECKSUMS}") + b"\n")
    with pytest.raises(PublishError, match=r"checksums\.sha256 fails its sha256 check against models/index"):
        verify_published(store, 1, 1)


def test_no_secret_reaches_a_published_file(store, tiny_run, monkeypatch):
    secret = f"lrpath-secret-{uuid.uuid4().hex}"
    token = f"lrpath-token-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    secrets = [secret, token]
    if not store.is_local:
        option_secret = f"lrpath-option-{uuid.uuid4().hex}"
        secrets.append(option_secret)
        store = Store(store.url, {"key": "testing", "secret": option_secret})
    release = _publish(store, tiny_run, version=2, lineage_extra={"relative_cost": 0.5, "run": "nightly"})
    verify_published(store, 2, release.revision)
    for name in store.walk_files("models"):
        content = store.read_bytes(f"models/{name}")
        assert not any(s.encode() in content for s in secrets), name

    with pytest.raises(PublishError, match="lineage.json would contain a credential"):
        _publish(store, tiny_run, version=1, lineage_extra={"oops": secrets[-1]})
    assert read_index(store).revisions(1) == []
    assert store.ls("models/v1") == [] and store.ls(STAGING) == []


def test_publish_refuses_a_checkpoint_that_is_not_the_described_branch(store, tiny_run):
    record = tiny_run.timeline.version(1)
    url = store.url_of(_checkpoint_rel(tiny_run, record.branch_checkpoint))
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
    fork = store.url_of(_checkpoint_rel(tiny_run, record.fork_checkpoint))
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
    assert not store.exists(INDEX)


def test_concurrent_local_publishes_are_serialized(tiny_run, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_run.root, root, ignore=shutil.ignore_patterns("cache", "*.npy"))
    jobs = [("cosine", Store(str(root))) for _ in range(2)] + [("1-sqrt", Store(str(root)))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        releases = list(pool.map(lambda job: _publish(job[1], tiny_run, decay=job[0]), jobs))
    assert releases[0] == releases[1]
    assert sorted(r.revision for r in releases[1:]) == [1, 2]
    store = Store(str(root))
    assert [(r.revision, r.decay) for r in read_index(store).revisions(1)] == sorted(
        (r.revision, r.decay) for r in releases[1:]
    )
    for release in releases[1:]:
        verify_published(store, 1, release.revision)


def test_a_corrupt_checkpoint_is_not_published(store, tiny_run):
    rel = f"{_checkpoint_rel(tiny_run, tiny_run.timeline.version(1).branch_checkpoint)}/model.safetensors"
    data = bytearray(store.read_bytes(rel))
    data[-1] ^= 0x01
    store.write_bytes(rel, bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors fails its sha256 check"):
        _publish(store, tiny_run)
    assert read_index(store).revisions(1) == []
    assert store.ls("models/v1") == [] and store.ls(STAGING) == []
