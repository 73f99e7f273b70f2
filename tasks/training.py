"""Training tasks: each segment holds ``nproc`` device slots of its host and trains on exactly those.

A slot is a device of the worker's host (:mod:`lrpath_core.devices`: a per-host ``flock`` per
device, ``LRPATH_DEVICES``). On a server a segment also holds ``nproc`` slots of the global
concurrency limit ``gpu``, the cap on devices training at once across the workers (``lrpath
server up`` sets it to workers × devices). With ``nproc`` 1 the segment runs in-process on its
slot (``torch.device``, CPU threads = the host's cores / its slots); with more, under torchrun
(:mod:`tasks.torchrun`, ``CUDA_VISIBLE_DEVICES`` = its slots).

A segment resumes from its newest complete checkpoint, so a try that failed because the store
was unreachable (say, while writing a checkpoint) is retried like any storage task: the next try
loses at most ``checkpoint_every`` steps. Once the retries are spent the task fails with a
:class:`StoreError` naming the store.

The training code (torch, transformers) is imported by the task bodies, not by this module: Prefect
imports a flow's module, and so this one, before it reports the flow run Running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from prefect.logging import get_run_logger

from lrpath_core.config import ComputeConfig, DecayShape, ProjectConfig
from lrpath_core.devices import bound_device, hold_devices, host_devices, torch_threads
from lrpath_core.segment import Branch, SegmentRunner
from lrpath_core.storage import Store
from lrpath_core.timeline import CheckpointRef
from tasks.gpu_limit import gpu_limit
from tasks.progress import SegmentProgress
from tasks.retry import storage_task, store_unreachable_is_store_error
from tasks.torchrun import TorchrunSegment


def side_by_side(config: ProjectConfig) -> bool:
    """Whether this host has slots for the branch and the main tail at once (else: branch first)."""
    compute = config.compute.effective()
    return len(host_devices(compute)) >= 2 * compute.nproc


@contextlib.contextmanager
def training_slot(compute: ComputeConfig, what: str) -> Iterator[SegmentRunner]:
    """Hold the slots a segment needs; yields the runner that trains it on exactly those."""
    compute = compute.effective()
    log = get_run_logger()

    def waiting(devices: list[str]) -> None:
        log.info("%s waits for %d free device slot(s) of %s", what, compute.nproc, ",".join(devices))

    with gpu_limit(compute.nproc), hold_devices(compute, compute.nproc, waiting, what) as lease:
        if compute.nproc == 1:
            from lrpath_core.train import run_segment

            log.info("%s trains on %s (%d torch threads, in-process)", what, lease.describe(), lease.threads)
            with bound_device(lease.devices[0]), torch_threads(lease.threads):
                yield run_segment
        else:
            log.info(
                "%s trains on %s (torchrun --nproc-per-node %d, %s, %d torch threads per rank)",
                what,
                lease.describe(),
                compute.nproc,
                compute.strategy,
                lease.threads,
            )
            yield TorchrunSegment(lease, compute.strategy)


@contextlib.contextmanager
def gpu_slot() -> Iterator[None]:
    """One device slot for in-process training outside the version tasks (``compare-paradigms``)."""
    compute = ProjectConfig().compute.effective().model_copy(update={"nproc": 1})
    with training_slot(compute, "compare"):
        yield


@storage_task("extend-main", "main-v{version}-to-{to}")
def extend_main_path(
    store_url: str, config: ProjectConfig, version: int, to: Literal["fork", "end"]
) -> CheckpointRef:
    """The main path (constant η_max) up to version ``version``'s fork step or its end."""
    from lrpath_core.pipeline import extend_main

    what = f"main path of version {version} to its {to}"
    key = f"main-v{version}-to-{to}"
    progress = SegmentProgress(key, what)
    with training_slot(config.compute, key) as runner:
        with store_unreachable_is_store_error(store_url, f"training the {what}"):
            store = Store(store_url)
            return extend_main(
                store, config, version, to, progress=progress, progress_bar=True, runner=runner
            )


# the task's parameters are pipeline.branch's: a thin wrapper adding progress, the device slots and retries
@storage_task("branch-decay", "branch-v{version}")
def branch_decay(
    store_url: str,
    config: ProjectConfig,
    version: int,
    decay: DecayShape | None = None,
    alpha: float | None = None,
) -> Branch:
    """A branch from the fork checkpoint, decaying to η_min."""
    from lrpath_core.pipeline import branch

    what = f"branch of version {version} (decay {decay or config.paradigm.decay})"
    progress = SegmentProgress(f"branch-v{version}", what)
    with training_slot(config.compute, f"branch-v{version}") as runner:
        with store_unreachable_is_store_error(store_url, f"training the {what}"):
            store = Store(store_url)
            return branch(
                store, config, version, decay, alpha, progress=progress, progress_bar=True, runner=runner
            )
