from __future__ import annotations

from prefect.logging import get_run_logger

from lrpath_core import layout
from lrpath_core.config import ProjectConfig
from lrpath_core.incoming import ready_folders
from lrpath_core.ingest import add_version
from lrpath_core.storage import Store
from lrpath_core.timeline import VersionRecord
from lrpath_core.timeline_store import load_timeline
from tasks.retry import storage_task, store_unreachable_is_store_error


@storage_task("find-incoming")
def find_incoming(store_url: str) -> list[str]:
    """URLs of complete ``incoming/`` folders whose names are not yet versions of the timeline."""
    store = Store(store_url)
    with store_unreachable_is_store_error(store_url, "looking for new data"):
        timeline, _ = load_timeline(store)
        known = {v.name for v in timeline.versions} if timeline else set()
        return [store.url_of(layout.incoming_dir(name)) for name in ready_folders(store) if name not in known]


@storage_task("ingest", "ingest-{name}")
def ingest(store_url: str, config: ProjectConfig, source_url: str, name: str) -> VersionRecord:
    with store_unreachable_is_store_error(store_url, f"ingesting {name}"):
        record = add_version(Store(store_url), config, source_url, name=name)
    get_run_logger().info(
        "version %d (%s): ΔT=%d steps, S=%d, branch %d steps from fork step %d",
        record.version,
        record.name,
        record.delta_steps,
        record.cumulative_steps,
        record.branch_steps,
        record.fork_step,
    )
    return record
