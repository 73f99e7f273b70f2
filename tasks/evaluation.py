from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from lrpath_core.pipeline import evaluate_branch, record_branch
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef
from tasks.retry import (
    STORAGE_RETRIES,
    STORAGE_RETRY_DELAYS,
    retry_on_storage_error,
    store_unreachable_is_store_error,
)


@task(
    name="evaluate",
    task_run_name="evaluate-v{version}",
    cache_policy=NONE,
    retries=STORAGE_RETRIES,
    retry_delay_seconds=STORAGE_RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_error,
)
def evaluate(
    store_url: str, version: int, checkpoint: CheckpointRef, record: bool = True
) -> dict[str, float]:
    """Perplexity of a branch on every version's held-out data; posts a table artifact."""
    store = Store(store_url)
    with store_unreachable_is_store_error(store_url, f"evaluating v{version}"):
        ppl = evaluate_branch(store, version, checkpoint.url)
        if record:
            record_branch(store, version, checkpoint, ppl)
    rows = [{"data version": f"v{v}", "perplexity": round(p, 3)} for v, p in ppl.per_version.items()]
    rows.append({"data version": "all (token-weighted)", "perplexity": round(ppl.overall, 3)})
    create_table_artifact(rows, key=f"ppl-v{version}", description=f"Perplexity of release v{version}")
    return ppl.as_metrics()
