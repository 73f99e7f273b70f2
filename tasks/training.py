"""Training tasks: one GPU job at a time through Prefect's global concurrency limit ``gpu``.

A segment resumes from its newest complete checkpoint, so a try that failed because the store
was unreachable (say, while writing a checkpoint) is retried like any storage task: the next try
loses at most ``checkpoint_every`` steps. Once the retries are spent the task fails with a
:class:`StoreError` naming the store.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from prefect.concurrency.sync import concurrency

from lrpath_core.config import DecayShape, ProjectConfig
from lrpath_core.pipeline import Branch, branch, extend_main
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef
from tasks.progress import SegmentProgress
from tasks.retry import storage_task, store_unreachable_is_store_error

GPU_SLOT = "gpu"


def gpu_slot():
    """Hold the ``gpu`` global concurrency slot while training.

    On the ephemeral API (no ``PREFECT_API_URL``: the demo, tests) there is no limit to hold and
    Prefect would only warn. On a server the limit must exist (``lrpath server up`` creates it):
    ``strict=True`` makes a missing limit an error instead of silently meaning "no limit".
    """
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return contextlib.nullcontext()
    return concurrency(GPU_SLOT, occupy=1, strict=True)


@storage_task("extend-main", "main-v{version}-to-{to}")
def extend_main_path(
    store_url: str, config: ProjectConfig, version: int, to: Literal["fork", "end"]
) -> CheckpointRef:
    """The main path (constant η_max) up to version ``version``'s fork step or its end."""
    what = f"main path of version {version} to its {to}"
    progress = SegmentProgress(f"main-v{version}-to-{to}", what)
    with gpu_slot(), store_unreachable_is_store_error(store_url, f"training the {what}"):
        return extend_main(Store(store_url), config, version, to, progress=progress, progress_bar=True)


# the task's parameters are pipeline.branch's: a thin wrapper adding progress, the GPU slot and retries
@storage_task("branch-decay", "branch-v{version}")
def branch_decay(
    store_url: str,
    config: ProjectConfig,
    version: int,
    decay: DecayShape | None = None,
    alpha: float | None = None,
) -> Branch:
    """A branch from the fork checkpoint, decaying to η_min."""
    what = f"branch of version {version} (decay {decay or config.paradigm.decay})"
    progress = SegmentProgress(f"branch-v{version}", what)
    with gpu_slot(), store_unreachable_is_store_error(store_url, f"training the {what}"):
        return branch(Store(store_url), config, version, decay, alpha, progress=progress, progress_bar=True)
