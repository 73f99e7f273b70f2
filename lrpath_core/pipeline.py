"""A version step of path switching, written once: the nodes of DESIGN.md §2's DAG.

``extend_main(to="fork")`` → (``branch`` → ``evaluate_release`` → ``publish_release``) ∥ ``extend_main(to="end")``

``update_version`` runs them one after the other for plain ``python``; the ``version-update``
Prefect flow wraps the *same* functions in tasks and runs the branch beside the main tail;
``lrpath compare`` runs them on a store of its own. Every function is idempotent: a step whose
result is already in ``timeline.json`` returns it, a step that died half-way resumes from its
newest checkpoint. Ingest (a drop becoming a version) is :mod:`lrpath_core.ingest`.
"""

from __future__ import annotations

import logging
from typing import Literal

from lrpath_core import layout
from lrpath_core.checkpoint import list_checkpoints, read_manifest, remove_checkpoint
from lrpath_core.config import DecayShape, ProjectConfig
from lrpath_core.evaluate import Perplexity, evaluate_checkpoint
from lrpath_core.ingest import add_version
from lrpath_core.publish import publish_version
from lrpath_core.schedules import LRPath
from lrpath_core.segment import Branch, DataSpec, ProgressFn, SegmentRunner, SegmentSpec
from lrpath_core.storage import Store
from lrpath_core.timeline import (
    CheckpointRef,
    Release,
    Timeline,
    TimelineError,
    VersionRecord,
    branch_length,
    retained_checkpoints,
)
from lrpath_core.timeline_store import load_project_tokenizer, require_timeline, update_timeline
from lrpath_core.train import run_segment

log = logging.getLogger(__name__)


def main_lr_path(config: ProjectConfig) -> LRPath:
    o = config.optimizer
    return LRPath(kind="main", lr_max=o.lr_max, lr_min=o.lr_min, warmup_steps=o.warmup_steps)


def vocab_size(store: Store) -> int:
    return len(load_project_tokenizer(store))


def segment_spec(
    store: Store,
    config: ProjectConfig,
    run: str,
    init: str | None,
    start: int,
    end: int,
    lr_path: LRPath,
    version: int,
    progress_bar: bool = False,
    save_at: list[int] | None = None,
    order: Literal["within_version", "global"] = "within_version",
    init_optimizer: bool = True,
    config_hash: str | None = None,
) -> SegmentSpec:
    """A segment over D_1..D_version, kept at its end step (and at ``save_at``).

    Path switching plays the versions in stream order and carries the optimizer state; the
    baselines of a comparison choose their order (PTFS: global shuffle) and start a fresh AdamW.
    """
    return SegmentSpec(
        run=run,
        init=init,
        init_optimizer=init_optimizer,
        start_step=start,
        end_step=end,
        lr_path=lr_path,
        save_at=save_at or [end],
        checkpoint_every=config.checkpoint_every,
        data=DataSpec(
            versions=list(range(1, version + 1)),
            order=order,
            batch_size=config.optimizer.batch_size,
            seed=config.optimizer.seed,
        ),
        model=config.model,
        optimizer=config.optimizer,
        vocab_size=vocab_size(store),
        config_hash=config_hash or config.training_hash(),
        progress_bar=progress_bar,
    )


def extend_main(
    store: Store,
    config: ProjectConfig,
    version: int,
    to: Literal["fork", "end"],
    progress: ProgressFn | None = None,
    progress_bar: bool = False,
    runner: SegmentRunner = run_segment,
) -> CheckpointRef:
    """The main path (constant η_max) up to version ``version``'s fork step or its end ``S_i``.

    To the fork it starts from the previous version's end ``S_{i-1}``; to the end (the main tail,
    where the next version starts) from this version's fork. Always from its own checkpoint,
    never from a branch. ``runner`` trains the segment (in-process by default; a task passes its
    torchrun launcher).
    """
    record = require_timeline(store).version(version)
    existing = record.fork_checkpoint if to == "fork" else record.version_end_checkpoint
    if existing is not None:
        return existing
    previous, fork = record.previous_cumulative_steps, record.fork_step
    start, target = (previous, fork) if to == "fork" else (max(fork, previous), record.cumulative_steps)
    if target <= start:  # the fork is a checkpoint the main path keeps already (S_{i-1}, or retained earlier)
        if target == 0:
            raise TimelineError(f"version {version} forks at step 0: no main-path checkpoint can exist there")
        ref = _existing_main(store, target, version)
    else:
        init = layout.main_checkpoint(start) if start > 0 else None
        if init is not None and read_manifest(store, init, verify=False, missing_ok=True) is None:
            raise TimelineError(
                f"main-path checkpoint {store.url_of(init)} is missing: run the update for version "
                f"{version - 1 if to == 'fork' else version} first"
            )
        # the tail keeps the retention window's checkpoints, where later versions may fork
        keep = sorted({s for s in record.retained_steps if start < s < target} | {target})
        spec = segment_spec(
            store,
            config,
            layout.MAIN_RUN,
            init,
            start,
            target,
            main_lr_path(config),
            version,
            progress_bar,
            keep,
        )
        ref = runner(store, spec, progress).checkpoints[target]
        _count_steps(store, "main", spec)

    def record_ref(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        rec = timeline.version(version)
        if to == "fork":
            rec.fork_checkpoint = ref
            rec.status = "forked" if rec.status in ("ingested", "main_to_fork") else rec.status
        else:
            rec.version_end_checkpoint = ref
        return timeline

    timeline = update_timeline(store, record_ref)
    if to == "end" and timeline.retain_every is not None:
        _prune_main_path(store, timeline)
    return ref


def _prune_main_path(store: Store, timeline: Timeline) -> None:
    """Remove main-path checkpoints no later fork can need (forks and version ends always stay)."""
    keep = set(retained_checkpoints(timeline.plans()))
    for step in list_checkpoints(store, layout.MAIN_RUN):
        if step not in keep and step < max(keep):
            remove_checkpoint(store, layout.main_checkpoint(step))


def _existing_main(store: Store, step: int, version: int) -> CheckpointRef:
    rel = layout.main_checkpoint(step)
    found = read_manifest(store, rel, verify=False, missing_ok=True)
    if found is None:
        raise TimelineError(
            f"version {version} forks at the retained main-path checkpoint {store.url_of(rel)}, which is "
            "missing: restore it (a store from before retention windows keeps none inside earlier data)"
        )
    return CheckpointRef(url=store.url_of(rel), step=step, sha256=found[1])


def segment_key(path: Literal["main", "branch"], run: str, start: int, end: int) -> str:
    """The key of a segment in ``timeline.segments``: ``path:run:start-end``."""
    return f"{path}:{run}:{start}-{end}"


def _count_steps(store: Store, path: Literal["main", "branch"], spec: SegmentSpec) -> None:
    """Record a finished segment's steps once, keyed by the segment.

    Counting per segment (not per process run) keeps the cost exact when a segment was killed
    and resumed (its steps count once, in full) or run again when already complete (no change).
    """
    key = segment_key(path, spec.run, spec.start_step, spec.end_step)

    def put(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        timeline.segments[key] = spec.end_step - spec.start_step
        for kind in ("main", "branch"):
            total = sum(n for k, n in timeline.segments.items() if k.startswith(f"{kind}:"))
            setattr(timeline.steps_run, kind, total)
        return timeline

    if key not in require_timeline(store).segments:
        update_timeline(store, put)


def branch_plan(store: Store, version: int, alpha: float | None = None) -> tuple[int, int]:
    """``(fork step, branch steps)`` of a branch of ``version`` with ``alpha``: the timeline's own
    branch, or for another α the newest kept main-path checkpoint at or before ``S_i − ceil(α·S_i)``
    (the branch is never shorter than ``ceil(α·S_i)``); refused early when there is none."""
    timeline = require_timeline(store)
    record = timeline.version(version)
    if alpha is None or alpha == timeline.alpha:
        fork, end = record.fork_step, record.cumulative_steps
        if read_manifest(store, layout.main_checkpoint(fork), verify=False, missing_ok=True) is None:
            raise TimelineError(
                f"no main-path checkpoint at step {fork} ({store.url_of(layout.main_checkpoint(fork))}) to fork "
                f"version {version}'s branch from: run the update for version {version} first"
            )
        return fork, record.branch_steps
    if not 0 < alpha < 1:
        raise TimelineError(f"alpha must be strictly between 0 and 1, got {alpha}")
    end = record.cumulative_steps
    nominal = end - branch_length(alpha, end)
    kept = list_checkpoints(store, layout.MAIN_RUN)
    earlier = [s for s in kept if 0 < s <= nominal]
    if not earlier:
        raise TimelineError(
            f"no main-path checkpoint at or before step {nominal} to fork version {version}'s branch from "
            f"(alpha={alpha}); the main path keeps checkpoints at steps {', '.join(map(str, kept)) or 'none'}"
        )
    return earlier[-1], end - earlier[-1]


def branch(
    store: Store,
    config: ProjectConfig,
    version: int,
    decay: DecayShape | None = None,
    alpha: float | None = None,
    progress: ProgressFn | None = None,
    progress_bar: bool = False,
    runner: SegmentRunner = run_segment,
) -> Branch:
    """Decay a branch of ``version`` from its main-path fork checkpoint to η_min.

    Another α moves the fork; the main-path checkpoint there must already exist (the main path
    is never re-trained for a branch).
    """
    timeline = require_timeline(store)
    end = timeline.version(version).cumulative_steps
    fork, branch_steps = branch_plan(store, version, alpha)
    decay = decay or timeline.decay
    alpha = alpha if alpha is not None else timeline.alpha
    o = config.optimizer
    lr_path = LRPath(
        kind="branch", lr_max=o.lr_max, lr_min=o.lr_min, start_step=fork, length=branch_steps, shape=decay
    )
    run = layout.branch_run(version, decay, alpha)
    spec = segment_spec(
        store, config, run, layout.main_checkpoint(fork), fork, end, lr_path, version, progress_bar
    )
    # one process trains a branch at a time (an update's and a re-run's of the same decay and α)
    with store.lease(layout.branch_lock(version, decay, alpha), on_wait=_log_wait(run)):
        result = runner(store, spec, progress)
    _count_steps(store, "branch", spec)
    return Branch(
        version=version,
        checkpoint=result.checkpoints[end],
        decay=decay,
        alpha=alpha,
        fork_step=fork,
        branch_steps=branch_steps,
    )


def _log_wait(what: str):
    def waiting(holder: str) -> None:
        log.info("%s is being trained by %s: waiting for it", what, holder)

    return waiting


def evaluate_release(store: Store, released: Branch) -> Perplexity:
    """Perplexity of a branch end on the held-out data of every version seen so far."""
    versions = list(range(1, released.version + 1))
    return evaluate_checkpoint(store, store.relative(released.checkpoint.url), versions)


def record_branch(store: Store, released: Branch, ppl: Perplexity) -> Timeline:
    """Keep the timeline's own branch (its decay and α) and its metrics in the version's record."""

    def put(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        rec = timeline.version(released.version)
        rec.branch_checkpoint = released.checkpoint
        rec.metrics = ppl.as_metrics()
        return timeline

    return update_timeline(store, put)


def publish_release(store: Store, released: Branch, metrics: dict[str, float]) -> Release:
    """Publish a branch end as a revision of its version (visible only when complete) and record it."""
    costs = require_timeline(store).costs()
    release = publish_version(
        store,
        released.version,
        released.checkpoint.url,
        decay=released.decay,
        alpha=released.alpha,
        fork_step=released.fork_step,
        branch_steps=released.branch_steps,
        metrics=metrics,
        lineage_extra={"relative_cost": {name: round(c.relative_cost, 4) for name, c in costs.items()}},
    )
    record_release(store, released.version, release)
    return release


def record_release(store: Store, version: int, release: Release) -> Timeline:
    """Add a published revision to the version's record (once) and mark the version released."""

    def put(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        rec = timeline.version(version)
        if all(r.revision != release.revision for r in rec.releases):
            rec.releases.append(release)
            rec.releases.sort(key=lambda r: r.revision)
        rec.status = "released"
        return timeline

    return update_timeline(store, put)


def update_version(
    store: Store, config: ProjectConfig, version: int, progress_bar: bool = False
) -> VersionRecord:
    """One version's whole DAG in order: the sequential twin of the ``version-update`` flow."""
    extend_main(store, config, version, "fork", progress_bar=progress_bar)
    released = branch(store, config, version, progress_bar=progress_bar)
    ppl = evaluate_release(store, released)
    record_branch(store, released, ppl)
    publish_release(store, released, ppl.as_metrics())
    extend_main(store, config, version, "end", progress_bar=progress_bar)
    return require_timeline(store).version(version)


def run_timeline(
    store: Store, config: ProjectConfig, sources: list[str], progress_bar: bool = False
) -> Timeline:
    """Ingest every source folder in order and bring each version to a published release."""
    store.check_reachable()
    for source in sources:
        record = add_version(store, config, source)
        update_version(store, config, record.version, progress_bar=progress_bar)
    return require_timeline(store)
