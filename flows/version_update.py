"""``version-update``: ingest what arrived, then one ``update-version`` subflow run per pending version.

ingest (claimed drops) → for each unreleased version: update-version ``v{N}-{name}`` → timeline report

A run that finds no drop waiting and every version released ends at once ("nothing to do"), so
duplicate triggers cost nothing. Two updates of one store run one after the other (a lease on
every store kind); a drop is claimed (``incoming/<name>/_CLAIMED``, this run's id inside) under
that lease just before it is ingested (:mod:`lrpath_core.announce`).
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.update_version import run_version
from lrpath_core import announce, layout
from lrpath_core.announce import default_store
from lrpath_core.config import ProjectConfig, load_config
from lrpath_core.incoming import incoming_name
from lrpath_core.ingest import DropRejected
from lrpath_core.storage import Store
from lrpath_core.timeline_store import load_timeline, store_config, unreleased_versions
from tasks.ingest import find_incoming, ingest
from tasks.report import timeline_report

__all__ = ["default_store", "version_update"]


def update_run_name() -> str:
    """``update-{store basename}-{UTC timestamp}``."""
    store = flow_run.parameters.get("store") or default_store()
    base = posixpath.basename(store.rstrip("/")) or "store"
    return f"update-{base}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


@flow(name="version-update", flow_run_name=update_run_name, log_prints=True)
def version_update(
    store: str | None = None,
    sources: list[str] | None = None,
    config_path: str | None = None,
    scan_incoming: bool = True,
) -> dict:
    """Bring every arrived, unreleased data version to a published release.

    ``sources`` are version folders to ingest now (in order); with ``scan_incoming`` the store's
    complete ``incoming/`` folders are ingested too. Re-running after a crash resumes: finished
    steps are read from ``timeline.json``, a half-done segment from its newest checkpoint.
    """
    logger = get_run_logger()
    store_obj = Store(store or default_store())
    store_obj.check_reachable()
    if not sources and announce.nothing_to_do(store_obj):
        logger.info("no data waiting and every version released in %s: nothing to do", store_obj.url)
        return {"store": store_obj.url, "released": []}
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
    released: list[int] = []
    held: DropRejected | None = None
    pending = list(sources or [])
    while True:
        if scan_incoming:
            pending += [s for s in find_incoming(url) if s not in pending]
        held = held or _ingest_all(store_obj, config, pending)
        timeline, _ = load_timeline(store_obj)
        todo = unreleased_versions(timeline) if timeline else []
        if not todo:
            break  # new drops that arrived while versions trained are picked up by the loop
        for version in todo:
            release = run_version(url, config, timeline.version(version))
            logger.info("released v%d r%d at %s", version, release.revision, release.url)
            released.append(version)
        pending = []
        if held is not None:
            break
    if timeline is None:
        if held is not None:
            raise held
        logger.info("no data yet in %s: nothing to do", url)
        return {"store": url, "released": []}
    summary = timeline_report(url)
    if held is not None:
        raise held
    return {"store": url, "released": released, **summary}


def _ingest_all(store_obj: Store, config: ProjectConfig, sources: list[str]) -> DropRejected | None:
    """Claim and ingest each source in order; the first held drop stops the rest (versions are ordered)."""
    logger = get_run_logger()
    run_id = str(flow_run.id or "local")
    for source in sources:
        name = incoming_name(store_obj, source)
        if name is not None:
            previous = announce.claim(store_obj, name, run_id)
            if previous is not None:
                logger.warning(
                    "drop %s was claimed by run %s, which no longer runs: taken over", name, previous
                )
        try:
            ingest(store_obj.url, config, source, source.rstrip("/").rsplit("/", 1)[-1])
        except DropRejected as exc:
            logger.error("%s", exc)
            create_markdown_artifact(f"### Data drop held\n\n{exc}", key="held-drop")
            return exc
    return None
