"""A tiny released timeline to publish from, and helpers shared by the publish tests.

Test files import this as ``publish_support`` after putting ``tests/`` on ``sys.path`` (like
``servers``); the fixtures built on it are in ``tests/lrpath_core/conftest.py`` so that the run is
trained once per session, however many publish test files ask for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from lrpath_core.publish import publish_version
from lrpath_core.published import download_published
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef, Release, Timeline

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


def train_tiny_run(base: Path) -> TinyRun:
    """Two released versions and a second (1-sqrt) branch of version 1, on a local store under ``base``."""
    from lrpath_core.config import load_config
    from lrpath_core.pipeline import branch, run_timeline
    from lrpath_core.synthetic import write_synthetic_versions

    sources = write_synthetic_versions(str(base / "incoming"), versions=2, docs_per_version=400, seed=0)
    config = load_config(None, store=str(base / "store"), **TINY)
    store = Store(config.store)
    threads = torch.get_num_threads()
    # one thread: on a busy 2-core machine two OpenMP threads stall each other (~10x slower)
    torch.set_num_threads(1)
    try:
        timeline = run_timeline(store, config, sources)
        other = branch(store, config, 1, decay="1-sqrt").checkpoint
    finally:
        torch.set_num_threads(threads)
    return TinyRun(base / "store", timeline, other)


def needed(rel: Path) -> bool:
    """Whether a file of the tiny run's store is copied into a test store: not token caches and blocks,
    nor the revisions the run itself published (a test store starts with nothing published)."""
    return rel.parts[0] not in ("cache", "models") and rel.suffix != ".npy"


def checkpoint_rel(run: TinyRun, ref: CheckpointRef) -> str:
    return Path(ref.url).relative_to(run.root).as_posix()


def publish(store: Store, run: TinyRun, version: int = 1, decay: str = "cosine", **kwargs) -> Release:
    record = run.timeline.version(version)
    ref = record.branch_checkpoint if decay == "cosine" else run.other_branch
    return publish_version(
        store,
        version,
        store.url_of(checkpoint_rel(run, ref)),
        decay=decay,
        alpha=run.timeline.alpha,
        fork_step=record.fork_step,
        branch_steps=record.branch_steps,
        metrics=record.metrics,
        **kwargs,
    )


def hashes(store: Store, rel: str) -> dict[str, str]:
    return {
        name: hashlib.sha256(store.read_bytes(f"{rel}/{name}")).hexdigest() for name in store.walk_files(rel)
    }


def local_copy(store: Store, release: Release, version: int, tmp_path: Path) -> str:
    if store.is_local:
        return release.url
    return download_published(store, version, release.revision, tmp_path / "download")
