"""``rerun-branch``: one version's branch again from its stored fork checkpoint; main path untouched."""

from __future__ import annotations

from prefect import flow

from flows.version_update import default_store
from lrpath_core.config import DecayShape
from lrpath_core.storage import Store
from lrpath_core.timeline import Release
from lrpath_core.timeline_store import require_timeline, store_config
from tasks.evaluation import evaluate
from tasks.publishing import publish
from tasks.training import branch_decay


@flow(name="rerun-branch", log_prints=True)
def rerun_branch(
    version: int, store: str | None = None, decay: DecayShape | None = None, alpha: float | None = None
) -> Release:
    """Decay version ``version``'s branch again (optionally another shape or α) and publish a revision.

    Another α moves the fork; if the main path kept no checkpoint there the run is refused with a
    clear message (the main path is never re-trained for a re-run).
    """
    store_obj = Store(store or default_store())
    config = store_config(store_obj)
    require_timeline(store_obj).version(version)
    released = branch_decay(store_obj.url, config, version, decay, alpha)
    metrics = evaluate(store_obj.url, released, record=False)
    return publish(store_obj.url, released, metrics)
