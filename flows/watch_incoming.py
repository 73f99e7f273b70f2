"""``watch-incoming``: announce complete new data drops, once each; re-announce what a dead run left.

A light module (no torch, no transformers): it runs every minute or so on a CPU worker. The
markers that make an announcement happen once are :mod:`lrpath_core.announce`.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL

from lrpath_core import announce, layout
from lrpath_core.storage import Store

DATA_ARRIVED = announce.DATA_ARRIVED
VERSION_FLOW = "update-version"
UPDATE_FLOW = "version-update"
DEAD_STATES = ("CRASHED", "FAILED")
ACTIVE_STATES = ("PENDING", "RUNNING", "CANCELLING")


def emit_arrived(store_url: str, drop: str, **extra: str) -> None:
    emit_event(
        event=DATA_ARRIVED,
        resource=announce.event_resource(store_url),
        payload={**announce.event_payload(store_url, drop), **extra},
    )


@flow(name="watch-incoming", log_prints=True)
def watch_incoming(store: str | None = None) -> list[str]:
    """Announce each complete drop once (``lrpath.data.arrived``); returns the drops' URLs.

    With a Prefect server (``PREFECT_API_URL``), also announce again every ingested, unreleased
    version whose last ``update-version`` run crashed or failed, and every drop announced long
    ago that no run claimed.
    """
    logger = get_run_logger()
    store_obj = Store(store or announce.default_store())
    new = announce.announce_drops(store_obj, announce.waiting_drops(store_obj), emit_arrived)
    if new:
        logger.info("announced %d new drop(s): %s", len(new), ", ".join(new))
    for name in announce.stale_announcements(store_obj):
        announce.renew_announcement(store_obj, name)
        emit_arrived(store_obj.url, name, reason="not claimed")
        logger.warning("drop %s was announced but never claimed: announced again", name)
    if PREFECT_API_URL.value():
        recover_dead_versions(store_obj)
    return [store_obj.url_of(layout.incoming_dir(name)) for name in new]


def recover_dead_versions(store: Store) -> list[int]:
    """Re-announce ingested, unreleased versions whose last run is Crashed or Failed (once per run).

    Not while a ``version-update`` run of this store is still active: it holds the deployment's
    only slot (a zombie not yet set Crashed, or a run about to resume the version), so the
    announcement would be cancelled (``CANCEL_NEW``) and its once-per-run marker spent.
    """
    logger = get_run_logger()
    dead = []
    for record in announce.unreleased(announce.read_timeline(store)):
        last = last_version_run(store.url, record.version)
        if last is not None and last.state_type in DEAD_STATES:
            dead.append((record, last))
    if not dead:
        return []
    if (busy := active_update_run(store.url)) is not None:
        logger.info("v%d needs a new run, but %s still runs: next time", dead[0][0].version, busy)
        return []
    recovered = []
    for record, last in dead:
        if announce.announce_recovery(store, record.version, last.id):
            emit_arrived(store.url, record.name, recover=last.id)
            logger.warning(
                "v%d (%s): its last run %s is %s: announced again",
                record.version,
                record.name,
                last.name,
                last.state_type,
            )
            recovered.append(record.version)
    return recovered


class LastRun:
    def __init__(self, id: str, name: str, state_type: str | None) -> None:
        self.id, self.name, self.state_type = id, name, state_type


def last_version_run(store_url: str, version: int) -> LastRun | None:
    """The newest ``update-version`` run of ``version`` on this store (by its tags), from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[VERSION_FLOW])),
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"version:{version}", f"store:{store_url}"])
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    if not runs:
        return None
    run = runs[0]
    return LastRun(str(run.id), run.name, run.state_type.value if run.state_type else None)


def active_update_run(store_url: str) -> str | None:
    """The name of a Pending/Running ``version-update`` run of this store (parameter ``store``), if any."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    states = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE_STATES]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[UPDATE_FLOW])),
            flow_run_filter=FlowRunFilter(state=states),
            limit=50,
        )
    for run in runs:
        if run.parameters.get("store") in (store_url, None):
            return run.name
    return None
