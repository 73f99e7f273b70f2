"""``update-version``: one data version, fork → (branch → evaluate → publish) ∥ main tail → loss report.

The branch and the main tail run side by side when the host has device slots for both
(``LRPATH_DEVICES=cuda:0,cuda:1``, or CPU stand-ins ``cpu:0,cpu:1`` that split the cores); with
fewer they run one after the other, each on every thread of its slot: the branch first, then its
evaluation and publication (the release comes as early as it can), then the main tail.

A subflow of ``version-update``, one run per version, named ``v{N}-{name}`` and tagged
``lrpath``, ``version:{N}``, ``store:{url}``: a failed version shows as its own failed run (with
a ``version-failed-vN`` artifact) and the versions before it stay released. Its retries resume
(every step is idempotent: finished steps come from ``timeline.json``, a half-done segment from
its newest checkpoint).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags
from prefect.artifacts import create_markdown_artifact
from prefect.context import TagsContext

from flows import heartbeats
from lrpath_core.config import ProjectConfig
from lrpath_core.timeline import Release, VersionRecord
from tasks.evaluation import evaluate
from tasks.publishing import publish
from tasks.report import loss_report
from tasks.torchrun import stop_torchrun_on_sigterm
from tasks.training import branch_decay, extend_main_path, side_by_side

heartbeats.install()  # a version subflow returns without waiting ~0.5 s for its heartbeat thread

VERSION_RETRIES = 1
VERSION_RETRY_DELAY_S = 60


def run_tags(store_url: str, version: int) -> list[str]:
    return ["lrpath", f"version:{version}", f"store:{store_url}"]


def post_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_failure`` hook: a markdown artifact naming the version and the error."""
    version = flow_run.parameters.get("version")
    try:
        state.result()
        error = state.message or "unknown error"
    except Exception as exc:  # noqa: BLE001 - the failure being reported
        error = f"{type(exc).__name__}: {exc}"
    create_markdown_artifact(
        f"### Version {version} failed\n\nRun `{flow_run.name}` of store "
        f"`{flow_run.parameters.get('store')}` failed after {flow_run.run_count} try(s):\n\n"
        f"```\n{error[:4000]}\n```\n\nWhat is stored is kept: fix the cause, then run the update again "
        "(it resumes from the newest checkpoint).",
        key=f"version-failed-v{version}",
        description=f"v{version} failed",
    )


@flow(
    name="update-version",
    log_prints=True,
    retries=VERSION_RETRIES,
    retry_delay_seconds=VERSION_RETRY_DELAY_S,
    on_failure=[post_failure],
)
def update_version(store: str, config: ProjectConfig, version: int) -> Release:
    """Train, evaluate and publish version ``version`` of the timeline in ``store``."""
    with untagged_task_runs(), stop_torchrun_on_sigterm():
        fork = extend_main_path(store, config, version, "fork")
        if side_by_side(config):
            branch = branch_decay.submit(store, config, version, wait_for=[fork])
            tail = extend_main_path.submit(store, config, version, "end", wait_for=[fork])
            decayed = branch.result()
            metrics = evaluate(store, decayed)
            release = publish(store, decayed, metrics)
            tail.result()
        else:  # one slot: the release first
            decayed = branch_decay(store, config, version)
            metrics = evaluate(store, decayed)
            release = publish(store, decayed, metrics)
            extend_main_path(store, config, version, "end")
        loss_report(store, version, decayed)
    return release


def untagged_task_runs() -> TagsContext:
    """The version's tags stay on its subflow run; its task runs get none.

    Prefect takes a tag-concurrency slot (an API write) before every tagged task run starts. On a
    SQLite server that write, right after the previous task's state change, is often answered 503
    ("database is locked": Prefect issue #18934) and the client tries again after 2 s.
    """
    return TagsContext(current_tags=set())


def run_version(store_url: str, config: ProjectConfig, record: VersionRecord) -> Release:
    """Run ``update-version`` for one version as its own named, tagged subflow run."""
    named = update_version.with_options(flow_run_name=f"v{record.version}-{record.name}")
    with tags(*run_tags(store_url, record.version)):
        return named(store_url, config, record.version)
