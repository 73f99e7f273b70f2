from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from publish_support import publish  # noqa: E402

from lrpath_core.layout import MODEL_STAGING  # noqa: E402
from lrpath_core.model_index import read_index  # noqa: E402
from lrpath_core.publish_error import PublishError  # noqa: E402
from lrpath_core.published import verify_published  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402


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
    release = publish(store, tiny_run, version=2, lineage_extra={"relative_cost": 0.5, "run": "nightly"})
    verify_published(store, 2, release.revision)
    for name in store.walk_files("models"):
        content = store.read_bytes(f"models/{name}")
        assert not any(s.encode() in content for s in secrets), name

    with pytest.raises(PublishError, match="lineage.json would contain a credential"):
        publish(store, tiny_run, version=1, lineage_extra={"oops": secrets[-1]})
    assert read_index(store).revisions(1) == []
    assert store.ls("models/v1") == [] and store.ls(MODEL_STAGING) == []
