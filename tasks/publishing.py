from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NONE

from lrpath_core.config import DecayShape
from lrpath_core.pipeline import record_release, require_timeline
from lrpath_core.publish import publish_version
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef, Release
from tasks.retry import (
    STORAGE_RETRIES,
    STORAGE_RETRY_DELAYS,
    retry_on_storage_error,
    store_unreachable_is_store_error,
)


@task(
    name="publish",
    task_run_name="publish-v{version}",
    cache_policy=NONE,
    retries=STORAGE_RETRIES,
    retry_delay_seconds=STORAGE_RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_error,
)
def publish(
    store_url: str,
    version: int,
    checkpoint: CheckpointRef,
    decay: DecayShape,
    alpha: float,
    fork_step: int,
    branch_steps: int,
    metrics: dict[str, float],
) -> Release:
    """Publish a branch end as a versioned model (visible only when complete) and record it."""
    store = Store(store_url)
    with store_unreachable_is_store_error(store_url, f"publishing v{version}"):
        costs = require_timeline(store).costs()
        extra = {"relative_cost": {name: round(c.relative_cost, 4) for name, c in costs.items()}}
        release = publish_version(
            store,
            version,
            checkpoint.url,
            decay=decay,
            alpha=alpha,
            fork_step=fork_step,
            branch_steps=branch_steps,
            metrics=metrics,
            lineage_extra=extra,
        )
        record_release(store, version, release)
        if "://" in release.url:
            create_link_artifact(
                release.url, link_text=f"v{version} r{release.revision}", key=f"model-v{version}"
            )
        else:
            create_markdown_artifact(
                f"**v{version} revision {release.revision}** published at `{release.url}`\n\n"
                f"```python\nAutoModelForCausalLM.from_pretrained({release.url!r})\n```",
                key=f"model-v{version}",
            )
        return release
