"""``watch-incoming``: find complete new data folders and announce them. Nothing else."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.version_update import default_store
from lrpath_core.storage import Store
from tasks.ingest import find_incoming

DATA_ARRIVED = "lrpath.data.arrived"


@flow(name="watch-incoming", log_prints=True)
def watch_incoming(store: str | None = None) -> list[str]:
    store_obj = Store(store or default_store())
    new = find_incoming(store_obj.url)
    if new:
        emit_event(
            event=DATA_ARRIVED,
            resource={
                "prefect.resource.id": f"lrpath.store.{store_obj.url}",
                "prefect.resource.name": store_obj.url,
            },
            payload={"store": store_obj.url, "sources": new},
        )
        get_run_logger().info("announced %d new folder(s): %s", len(new), ", ".join(new))
    return new
