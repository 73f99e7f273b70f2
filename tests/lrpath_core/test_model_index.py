from __future__ import annotations

import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from publish_support import hashes, publish  # noqa: E402

from lrpath_core.layout import MODEL_STAGING, revision_claim  # noqa: E402
from lrpath_core.model_index import RevisionClaim, claim_revision, read_index  # noqa: E402
from lrpath_core.published import verify_published  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402


def test_republish_is_idempotent_and_a_new_decay_is_a_new_revision(store, tiny_run):
    first = publish(store, tiny_run)
    assert first.revision == 1
    before = hashes(store, "models/v1/r1")
    again = publish(store, tiny_run)
    assert again == first
    assert [r.revision for r in read_index(store).revisions(1)] == [1]

    other = publish(store, tiny_run, decay="1-sqrt")
    assert (other.revision, other.decay) == (2, "1-sqrt")
    assert hashes(store, "models/v1/r1") == before
    verify_published(store, 1, 1)
    verify_published(store, 1, 2)
    index = read_index(store)
    assert [(r.revision, r.decay) for r in index.revisions(1)] == [(1, "cosine"), (2, "1-sqrt")]
    assert index.get(1, 1).sha256 != index.get(1, 2).sha256
    assert publish(store, tiny_run).revision == 1
    assert publish(store, tiny_run, decay="1-sqrt").revision == 2
    assert store.ls("models/v1") == ["r1", "r1.claim", "r2", "r2.claim"]


def test_leftovers_of_a_dead_publish_are_removed_and_their_number_reused(store, tiny_run):
    """Holding the version's lease, a publish knows every unregistered folder is a dead one's."""
    store.write_text(f"{MODEL_STAGING}/v1-r1-{uuid.uuid4().hex}/model.safetensors", "half")
    store.write_text("models/v1/r1/config.json", "{}")
    other = RevisionClaim(sha256="0" * 64, decay="linear", alpha=0.5)
    store.write_text(revision_claim(1, 1), other.model_dump_json())
    release = publish(store, tiny_run)
    assert release.revision == 1
    verify_published(store, 1, 1)
    assert store.ls(MODEL_STAGING) == []
    assert RevisionClaim.model_validate_json(store.read_bytes(revision_claim(1, 1))) != other


def test_a_taken_claim_is_never_overwritten(store):
    claim = RevisionClaim(sha256="1" * 64, decay="cosine", alpha=0.18)
    assert claim_revision(store, 3, claim) == 1
    assert claim_revision(store, 3, claim) == 1  # the same publish again: resumed, not skipped
    assert not store.create(revision_claim(3, 1), b"{}")  # create-only on every store kind


def test_concurrent_local_publishes_are_serialized(tiny_run, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(tiny_run.root, root, ignore=shutil.ignore_patterns("cache", "models", "*.npy"))
    jobs = [("cosine", Store(str(root))) for _ in range(2)] + [("1-sqrt", Store(str(root)))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        releases = list(pool.map(lambda job: publish(job[1], tiny_run, decay=job[0]), jobs))
    assert releases[0] == releases[1]
    assert sorted(r.revision for r in releases[1:]) == [1, 2]
    store = Store(str(root))
    assert [(r.revision, r.decay) for r in read_index(store).revisions(1)] == sorted(
        (r.revision, r.decay) for r in releases[1:]
    )
    for release in releases[1:]:
        verify_published(store, 1, release.revision)
