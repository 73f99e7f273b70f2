"""``version-update``: the version timeline as a DAG (DESIGN.md §2).

ingest → main path to the fork → (branch decay → evaluate → publish) ∥ main tail → report
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from lrpath_core import layout
from lrpath_core.config import DEFAULT_STORE, ProjectConfig, load_config
from lrpath_core.ingest import DropRejected
from lrpath_core.storage import Store
from lrpath_core.timeline_store import load_timeline, require_timeline, store_config, unreleased_versions
from lrpath_core.train import cpu_threads_shared_by
from tasks.evaluation import evaluate
from tasks.ingest import find_incoming, ingest
from tasks.publishing import publish
from tasks.report import timeline_report
from tasks.training import branch_decay, extend_main_path


def default_store() -> str:
    return os.environ.get("LRPATH_STORE", DEFAULT_STORE)


@flow(name="version-update", log_prints=True)
def version_update(
    store: str | None = None,
    sources: list[str] | None = None,
    config_path: str | None = None,
    scan_incoming: bool = True,
) -> dict:
    """Bring every arrived, unreleased data version to a published release.

    ``sources`` are version folders to ingest now (in order); with ``scan_incoming`` the store's
    complete ``incoming/`` folders are ingested too. Re-running after a crash resumes: finished
    steps are read from ``timeline.json``, a half-done segment from its newest checkpoint. Two
    updates of one store run one after the other (a lease on every store kind; deployment runs
    are also limited to one at a time by the deployment's concurrency limit).
    """
    logger = get_run_logger()
    store_obj = Store(store or default_store())
    store_obj.check_reachable()
    config = store_config(store_obj, load_config(config_path) if config_path else None)

    def waiting(holder: str) -> None:
        logger.info(
            "another version update (%s) holds %s: waiting", holder, store_obj.url_of(layout.UPDATE_LOCK)
        )

    with store_obj.lease(layout.UPDATE_LOCK, on_wait=waiting):
        return _update(store_obj, config, sources, scan_incoming)


def _update(store_obj: Store, config: ProjectConfig, sources: list[str] | None, scan_incoming: bool) -> dict:
    logger = get_run_logger()
    url = store_obj.url
    pending = list(sources or [])
    if scan_incoming:
        pending += [s for s in find_incoming(url) if s not in pending]
    held: DropRejected | None = None
    for source in pending:
        try:
            ingest(url, config, source, source.rstrip("/").rsplit("/", 1)[-1])
        except DropRejected as exc:
            # later drops wait too: versions are ordered; what is already ingested still gets released
            logger.error("%s", exc)
            create_markdown_artifact(f"### Data drop held\n\n{exc}", key="held-drop")
            held = exc
            break

    timeline, _ = load_timeline(store_obj)
    if timeline is None:
        if held is not None:
            raise held
        logger.info("no data yet in %s: nothing to do", url)
        return {"store": url, "released": []}
    released = []
    for version in unreleased_versions(timeline):
        record = require_timeline(store_obj).version(version)
        fork = extend_main_path(url, config, version, "fork")
        with cpu_threads_shared_by(2):  # the branch and the main tail train side by side
            branch = branch_decay.submit(url, config, version, wait_for=[fork])
            tail = extend_main_path.submit(url, config, version, "end", wait_for=[fork])
            decayed = branch.result()
            metrics = evaluate(url, decayed)
            release = publish(url, decayed, metrics)
            tail.result()
        logger.info(
            "released v%d (%s) r%d: ppl %.3f at %s",
            version,
            record.name,
            release.revision,
            metrics["ppl"],
            release.url,
        )
        released.append(version)
    summary = timeline_report(url)
    if held is not None:
        raise held
    return {"store": url, "released": released, **summary}
