"""Fixtures of the publish tests (test_publish, test_model_index, test_published, test_secret_scan).

Imports are inside the fixtures: the other test files of this folder do not need them.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Two released versions and a second (1-sqrt) branch of version 1, on a local store."""
    from publish_support import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("publish-run"))


@pytest.fixture(scope="session")
def publish_s3_endpoint():
    import servers
    from publish_support import BUCKET

    with servers.moto_s3_server() as endpoint:
        servers.create_bucket(endpoint, BUCKET)
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request, tiny_run, tmp_path, monkeypatch):
    """A fresh store with the tiny run's tokenizer, data manifests and checkpoints (nothing published)."""
    import servers
    from publish_support import BUCKET, needed

    from lrpath_core.storage import Store

    if request.param == "local":
        root = tmp_path / "store"
        shutil.copytree(tiny_run.root, root, ignore=shutil.ignore_patterns("cache", "models", "*.npy"))
        return Store(str(root))
    endpoint = request.getfixturevalue("publish_s3_endpoint")
    for name, value in servers.s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    s3 = Store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")
    for path in sorted(tiny_run.root.rglob("*")):
        rel = path.relative_to(tiny_run.root)
        if path.is_file() and needed(rel):
            s3.put_file(str(path), rel.as_posix())
    return s3
