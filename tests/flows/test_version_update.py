"""The flows on Prefect's ephemeral API with a local store: announce, one subflow run per version,
retries, failure artifacts, re-run a branch, and the artifacts a person reads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterTags,
)
from prefect.client.schemas.sorting import FlowRunSort

import flows.update_version
import flows.watch_incoming
import lrpath_core.pipeline
from flows.rerun_branch import rerun_branch
from flows.version_update import version_update
from flows.watch_incoming import watch_incoming
from lrpath_core import announce, layout
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


def version_runs(store: Store, version: int) -> list:
    """``update-version`` runs of one version of this store, newest first."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"version:{version}", f"store:{store.url}"])
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        )


def artifacts_of(*run_ids) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=list(run_ids)))
        )
    return {a.key: a for a in found if a.key}


def flow_run(run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def failing_evaluation(monkeypatch, times: int) -> list[int]:
    """``evaluate_release`` raises ``times`` times (a bug, not retried by the task), then works."""
    real = lrpath_core.pipeline.evaluate_release  # the task imports it when it runs
    calls: list[int] = []

    def evaluate_release(store, released):
        calls.append(released.version)
        if len(calls) <= times:
            raise RuntimeError(f"evaluation broke (call {len(calls)})")
        return real(store, released)

    monkeypatch.setattr(lrpath_core.pipeline, "evaluate_release", evaluate_release)
    return calls


@pytest.fixture
def emitted(monkeypatch) -> list[dict]:
    found: list[dict] = []
    monkeypatch.setattr(flows.watch_incoming, "emit_event", lambda **event: found.append(event))
    return found


@pytest.fixture
def released_store(tmp_path, synthetic_sources, make_config, emitted):
    store = Store(str(tmp_path / "store"))
    save_config(store, make_config(store.url))
    stage_incoming(store, synthetic_sources[0])
    assert watch_incoming(store=store.url) == [store.url_of("incoming/v1")]
    assert watch_incoming(store=store.url) == [], "a drop is announced once"
    assert [e["payload"] for e in emitted] == [{"store": store.url, "drop": "v1"}]
    assert emitted[0]["event"] == "lrpath.data.arrived"
    assert emitted[0]["resource"]["prefect.resource.id"] == f"lrpath.store.{store.url}"
    result = version_update(store=store.url)
    assert result["released"] == [1]
    return store


def test_each_version_is_its_own_named_tagged_run_with_the_artifacts_a_person_reads(released_store):
    store = released_store
    [v1] = version_runs(store, 1)
    assert v1.name == "v1-v1" and v1.state_type.value == "COMPLETED"
    assert {"lrpath", "version:1", f"store:{store.url}"} <= set(v1.tags)
    with get_client(sync_client=True) as client:
        steps = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[v1.id])))
    # the tags stay on the run: a tagged task run costs a tag-concurrency write before it starts
    assert {"main-v1-to-fork", "branch-v1", "publish-v1"} <= {t.name for t in steps}
    assert all(not t.tags for t in steps), {t.name: t.tags for t in steps}
    parent = flow_run(announce.claimed_by(store, "v1"))
    assert parent.name.startswith("update-store-") and parent.state_type.value == "COMPLETED"

    alpha = f"{require_timeline(store).alpha:g}"
    loss_key = f"loss-v1-cosine-a{alpha.replace('.', '-')}"
    per_version = artifacts_of(v1.id)
    assert {"ppl-v1", "model-v1", loss_key, "losses" + loss_key[4:]} <= per_version.keys(), per_version.keys()
    assert "data:image/png;base64," in per_version[loss_key].data
    ppl_row = per_version["ppl-v1"].data
    assert '"v1"' in ppl_row and "all (token-weighted)" in ppl_row
    loss_rows = per_version["losses" + loss_key[4:]].data
    assert '"main path"' in loss_rows and '"branch (cosine' in loss_rows
    assert loss_rows.count('"step"') <= 200

    summary = artifacts_of(parent.id)
    assert {"timeline", "timeline-summary", "ppl-per-version", "lr-paths"} <= summary.keys()
    assert summary["lr-paths"].type == "markdown" and "data:image/png;base64," in summary["lr-paths"].data
    assert "| ver | name |" in summary["timeline-summary"].data
    assert "ppl_per_version" not in summary["timeline"].data


def test_a_failed_version_fails_alone_posts_an_artifact_and_is_retried_then_resumed(
    released_store, synthetic_sources, monkeypatch, emitted
):
    store = released_store
    monkeypatch.setattr(flows.update_version.update_version, "retry_delay_seconds", 0)
    timeline = require_timeline(store)
    v1_release = timeline.version(1).releases

    stage_incoming(store, synthetic_sources[1])
    assert watch_incoming(store=store.url) == [store.url_of("incoming/v2")]
    calls = failing_evaluation(monkeypatch, times=2)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        version_update(store=store.url)
    assert calls == [2, 2], "the subflow was tried twice (its retry), the first version not at all"
    [failed] = version_runs(store, 2)
    assert failed.name == "v2-v2" and failed.state_type.value == "FAILED" and failed.run_count == 2
    assert version_runs(store, 1)[0].run_count == 1
    notice = artifacts_of(failed.id)["version-failed-v2"]
    assert "Version 2 failed" in notice.data and "evaluation broke (call 2)" in notice.data
    timeline = require_timeline(store)
    assert timeline.version(1).releases == v1_release and not timeline.version(2).releases

    # the watcher (with a server) announces v2 again, once for this failed run
    monkeypatch.setattr(
        flows.watch_incoming, "PREFECT_API_URL", SimpleNamespace(value=lambda: "http://server")
    )
    emitted.clear()
    assert flows.watch_incoming.last_version_run(store.url, 2).state_type == "FAILED"
    watch_incoming(store=store.url)
    watch_incoming(store=store.url)
    assert [e["payload"] for e in emitted] == [{"store": store.url, "drop": "v2", "recover": str(failed.id)}]

    calls = failing_evaluation(monkeypatch, times=1)
    result = version_update(store=store.url)
    assert result["released"] == [2] and calls == [2, 2]
    retried = version_runs(store, 2)[0]
    assert retried.state_type.value == "COMPLETED" and retried.run_count == 2, "failed once, retried, resumed"
    assert require_timeline(store).version(2).status == "released"

    before = len(version_runs(store, 2))
    assert version_update(store=store.url) == {"store": store.url, "released": []}, "nothing to do"
    assert len(version_runs(store, 2)) == before


def test_rerun_branch_is_reproducible_and_named_after_its_branch(released_store, synthetic_sources):
    store = released_store
    main_before = tree_hashes(Path(store.root) / "checkpoints/main")
    first = store.read_bytes("models/v1/r1/model.safetensors")
    assert store.exists(layout.LR_PLOT)

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
    with get_client(sync_client=True) as client:
        names = {r.name for r in client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=10)}
    alpha = f"{require_timeline(store).alpha:g}"
    assert {f"v1-branch-cosine-a{alpha}", f"v1-branch-linear-a{alpha}"} <= names

    with pytest.raises(TimelineError, match="no main-path checkpoint at"):
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
