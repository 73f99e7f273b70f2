"""Shared fixtures: a tiny project on generated text, ingested once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# pytest-xdist runs tests in several processes: each gets its own Prefect home, so the ephemeral
# API servers they start do not share one SQLite database
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    prefect_home = os.environ.get("PREFECT_HOME", os.path.expanduser("~/.prefect"))
    os.environ["PREFECT_HOME"] = f"{prefect_home}-{worker}"
# device slots are per-host locks: a test session gets its own, so it never queues behind a demo
os.environ.setdefault("LRPATH_DEVICE_LOCKS", tempfile.mkdtemp(prefix="lrpath-test-devices-"))

TINY_OVERRIDES = {
    "data.vocab_size": 512,
    "optimizer.warmup_steps": 5,
    "optimizer.batch_size": 8,
    "optimizer.seq_len": 64,
    "optimizer.lr_max": 3e-3,
    "optimizer.lr_min": 3e-4,
    "checkpoint_every": 10,
}


def tiny_config(store: str, **extra):
    from lrpath_core.config import load_config

    return load_config(None, store=store, **{**TINY_OVERRIDES, **extra})


@pytest.fixture(scope="session")
def make_config():
    """``make_config(store_url, **overrides)``: the tiny test configuration."""
    return tiny_config


@pytest.fixture(scope="session")
def synthetic_sources(tmp_path_factory) -> list[str]:
    from lrpath_core.synthetic import write_synthetic_versions

    root = tmp_path_factory.mktemp("incoming")
    return write_synthetic_versions(str(root), versions=2, docs_per_version=150, seed=0)


@pytest.fixture(scope="session")
def _ingested_template(tmp_path_factory, synthetic_sources) -> Path:
    from lrpath_core.ingest import add_version
    from lrpath_core.storage import Store

    root = tmp_path_factory.mktemp("template") / "store"
    cfg = tiny_config(str(root))
    store = Store(str(root))
    for source in synthetic_sources:
        add_version(store, cfg, source)
    return root


@pytest.fixture
def ingested_store(tmp_path, _ingested_template):
    """A fresh copy of a store with the tokenizer and two ingested versions (nothing trained)."""
    from lrpath_core.storage import Store

    root = tmp_path / "store"
    shutil.copytree(_ingested_template, root)
    return Store(str(root)), tiny_config(str(root))


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and lose 10x when another job holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
