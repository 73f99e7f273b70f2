"""The flows on Prefect's ephemeral API with a local store: publish, re-run a branch, watch incoming."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flows.rerun_branch import rerun_branch
from flows.version_update import version_update
from flows.watch_incoming import watch_incoming
from lrpath_core.incoming import stage_incoming
from lrpath_core.model_index import read_index
from lrpath_core.storage import Store
from lrpath_core.timeline import TimelineError
from lrpath_core.timeline_store import require_timeline, save_config

pytestmark = pytest.mark.slow


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture
def released_store(tmp_path, synthetic_sources, make_config):
    store = Store(str(tmp_path / "store"))
    save_config(store, make_config(store.url))
    stage_incoming(store, synthetic_sources[0])
    assert watch_incoming(store=store.url) == [store.url_of("incoming/v1")]
    result = version_update(store=store.url)
    assert result["released"] == [1]
    return store


def test_version_update_publishes_and_rerun_branch_is_reproducible(released_store, synthetic_sources):
    store = released_store
    timeline = require_timeline(store)
    v1 = timeline.version(1)
    assert v1.status == "released" and v1.releases[0].revision == 1 and "ppl" in v1.metrics
    assert store.exists("reports/lr_paths.png")

    main_before = tree_hashes(Path(store.root) / "checkpoints/main")
    first = store.read_bytes("models/v1/r1/model.safetensors")

    same = rerun_branch(version=1, store=store.url)
    assert same.revision == 1, "identical config must give byte-identical weights, hence the same revision"
    assert store.read_bytes("models/v1/r1/model.safetensors") == first

    linear = rerun_branch(version=1, store=store.url, decay="linear")
    assert linear.revision == 2 and linear.decay == "linear"
    assert store.read_bytes("models/v1/r1/model.safetensors") == first
    assert store.read_bytes("models/v1/r2/model.safetensors") != first
    assert [r.revision for r in read_index(store).revisions(1)] == [1, 2]
    assert tree_hashes(Path(store.root) / "checkpoints/main") == main_before, (
        "the main path must stay untouched"
    )

    with pytest.raises(TimelineError, match="no main-path checkpoint at step"):
        rerun_branch(version=1, store=store.url, alpha=0.5)

    # the next version: incoming is scanned, the main path continues from its own checkpoint
    stage_incoming(store, synthetic_sources[1])
    result = version_update(store=store.url)
    assert result["released"] == [2]
    timeline = require_timeline(store)
    assert timeline.steps_run.main == timeline.version(2).cumulative_steps
    kept = {k: v for k, v in main_before.items() if k.startswith("step-")}
    assert kept and tree_hashes(Path(store.root) / "checkpoints/main").items() >= kept.items()
    assert watch_incoming(store=store.url) == []
