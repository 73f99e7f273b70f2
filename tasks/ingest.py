from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.logging import get_run_logger

from lrpath_core.config import ProjectConfig
from lrpath_core.incoming import INCOMING, ready_folders
from lrpath_core.pipeline import add_version, load_timeline
from lrpath_core.storage import Store
from lrpath_core.timeline import VersionRecord
from tasks.retry import (
    STORAGE_RETRIES,
    STORAGE_RETRY_DELAYS,
    retry_on_storage_error,
    store_unreachable_is_store_error,
)


@task(
    name="find-incoming",
    cache_policy=NONE,
    retries=STORAGE_RETRIES,
    retry_delay_seconds=STORAGE_RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_error,
)
def find_incoming(store_url: str) -> list[str]:
    """URLs of complete ``incoming/`` folders whose names are not yet versions of the timeline."""
    store = Store(store_url)
    with store_unreachable_is_store_error(store_url, "looking for new data"):
        timeline, _ = load_timeline(store)
        known = {v.name for v in timeline.versions} if timeline else set()
        return [store.url_of(f"{INCOMING}/{name}") for name in ready_folders(store) if name not in known]


@task(
    name="ingest",
    task_run_name="ingest-{name}",
    cache_policy=NONE,
    retries=STORAGE_RETRIES,
    retry_delay_seconds=STORAGE_RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_error,
)
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
