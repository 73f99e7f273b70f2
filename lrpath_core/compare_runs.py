"""The three paradigms' runs of a comparison, each in a store of its own, and their releases' PPL.

PTFS and CPT (the baselines) train plain segments in stores holding copies of the shared
tokenizer and versions, and count their steps from each run's loss log (one row per optimizer
step, kept across a resume). Path switching is the pipeline's own DAG (main path to the fork,
branch, main tail) on a store with a timeline; its steps come from ``timeline.segments``, where
the pipeline records every finished segment once. Each release's PPL is cached next to its run,
keyed by the checkpoint's manifest hash, so a resumed or repeated comparison trains and
evaluates nothing twice.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from lrpath_core import layout, pipeline
from lrpath_core.checkpoint import list_checkpoints, read_manifest
from lrpath_core.compare_setup import BASELINE_SHAPE, CompareError, CompareSetup, data_store, settings_hash
from lrpath_core.config import ProjectConfig
from lrpath_core.evaluate import Perplexity, evaluate_checkpoint
from lrpath_core.ingest import add_version
from lrpath_core.packing import load_manifest
from lrpath_core.segment import SegmentSpec
from lrpath_core.storage import Store, join
from lrpath_core.timeline import Paradigm, Timeline, VersionPlan, baseline_lr_path
from lrpath_core.timeline_store import load_timeline, require_timeline, store_config
from lrpath_core.train import ProgressFn, run_segment

ProgressFactory = Callable[[str], ProgressFn | None]
"""Gives the progress callback of one segment from its name (``v2``, ``main-v1-to-fork``, ``branch-v1``)."""


class ReleaseResult(BaseModel):
    version: int
    checkpoint: str
    steps_run: int = Field(description="optimizer steps of the segments this release needed")
    ppl: float = Field(description="token-weighted over the validation data of versions 1..i")
    ppl_per_version: dict[str, float]


class ParadigmRun(BaseModel):
    """One paradigm's releases, as its run function returns them (``run.json`` in its store)."""

    paradigm: Paradigm
    store: str
    releases: list[ReleaseResult]
    seconds: float = Field(description="wall time of the call that returned this (resumed work is quick)")

    @property
    def steps_run(self) -> int:
        return sum(r.steps_run for r in self.releases)


# run_ptfs, run_cpt and run_path_switching share one signature: the flow calls them alike
def run_ptfs(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """Version i from random init on D_1..D_i (one global shuffle): warm-up, cosine over S_i."""
    return _run_baseline(setup, config, "ptfs", progress_bar, progress)


def run_cpt(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """v1 = PTFS v1 (run again here); version i>1 from v_{i-1}'s release on D_i only.

    A release carries no optimizer state, so version i>1 starts a fresh AdamW, re-warms
    η_min → η_max over W steps and decays (cosine) to η_min over the rest of ΔT_i.
    """
    return _run_baseline(setup, config, "cpt", progress_bar, progress)


def _run_baseline(
    setup: CompareSetup,
    config: ProjectConfig,
    paradigm: Literal["ptfs", "cpt"],
    progress_bar: bool,
    progress: ProgressFactory | None,
) -> ParadigmRun:
    started = time.perf_counter()
    store = baseline_store(setup, paradigm)
    releases = []
    for plan in setup.plans:
        kind = "ptfs" if paradigm == "ptfs" or plan.version == 1 else "cpt"
        spec = _baseline_spec(store, config, plan, kind, progress_bar)
        releases.append(_train_and_evaluate(store, spec, progress))
    return _finish_run(store, paradigm, releases, started)


def run_path_switching(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """The pipeline's version steps (main path to the fork, branch, main tail) in a store of its own.

    Nothing is published: each release is its branch end, evaluated here.
    """
    started = time.perf_counter()
    store, ps_config, timeline = _path_switching_timeline(setup, config)

    def named(segment: str) -> ProgressFn | None:
        return progress(segment) if progress else None

    decay = setup.decay
    releases = []
    for plan in setup.plans:
        i = plan.version
        pipeline.extend_main(store, ps_config, i, "fork", named(f"main-v{i}-to-fork"), progress_bar)
        branch = pipeline.branch(
            store, ps_config, i, decay, progress=named(f"branch-v{i}"), progress_bar=progress_bar
        )
        pipeline.extend_main(store, ps_config, i, "end", named(f"main-v{i}-to-end"), progress_bar)
        run = layout.branch_run(i, decay, branch.alpha)
        checkpoint = store.relative(branch.checkpoint.url)
        ppl = _evaluate(store, run, checkpoint, list(range(1, i + 1)))
        if decay == timeline.decay:
            pipeline.record_branch(store, branch, ppl)
        steps = release_steps(store, branch)
        releases.append(_release(store, checkpoint, i, steps, ppl))
    return _finish_run(store, "path_switching", releases, started, layout.run_record(decay))


def release_steps(store: Store, branch: pipeline.Branch) -> int:
    """Steps a path-switching release needed: its version's main segments (S_{i-1} → fork → S_i; a
    segment of no steps does not exist) and its branch, as ``timeline.segments`` recorded them."""
    timeline = require_timeline(store)
    record = timeline.version(branch.version)
    run = layout.branch_run(branch.version, branch.decay, branch.alpha)
    start, fork, end = record.cumulative_steps - record.delta_steps, record.fork_step, record.cumulative_steps
    keys = [
        pipeline.segment_key("main", layout.MAIN_RUN, a, b) for a, b in ((start, fork), (fork, end)) if b > a
    ]
    keys.append(pipeline.segment_key("branch", run, branch.fork_step, end))
    missing = [key for key in keys if key not in timeline.segments]
    if missing:
        raise CompareError(
            f"the timeline in {store.url} has no step count for segment {missing[0]} (was it made by an "
            "older lrpath?): remove that folder to run path switching again"
        )
    return sum(timeline.segments[key] for key in keys)


def path_switching_store(setup: CompareSetup) -> Store:
    return Store(join(setup.out, layout.compare_path_switching(setup.alpha)))


def _path_switching_timeline(
    setup: CompareSetup, config: ProjectConfig
) -> tuple[Store, ProjectConfig, Timeline]:
    """The path-switching store with the shared versions ingested into its timeline.

    It gets the shared tokenizer and token cache, so its ingest finds every shard cached and
    packs the same blocks; decay shapes of one α share this store, its main path and timeline.
    """
    source, store = data_store(setup.out), path_switching_store(setup)
    _mirror(source, store, layout.TOKENIZER, layout.TOKENIZER_JSON)
    for plan in setup.plans:
        _copy_token_cache(source, store, plan.version)
    # the store's saved config: a later call with another branch shape keeps the timeline's hash
    saved = store.exists(layout.CONFIG)
    ps_config = store_config(store) if saved else config.model_copy(update={"store": store.url})
    timeline, _ = load_timeline(store)
    known = len(timeline.versions) if timeline else 0
    for number, url in enumerate(setup.sources, start=1):
        if number > known:
            add_version(store, ps_config, url)
        ours, shared = load_manifest(store, number), load_manifest(source, number)
        if (ours.data_sha256, ours.train_blocks, ours.val_blocks) != (
            shared.data_sha256,
            shared.train_blocks,
            shared.val_blocks,
        ):
            raise CompareError(
                f"version {number} in {store.url} differs from the shared data in {source.url}"
            )
    timeline = require_timeline(store)
    if timeline.alpha != setup.alpha or timeline.plans()[: len(setup.plans)] != setup.plans:
        raise CompareError(f"the timeline in {store.url} plans other steps than the data store; remove it")
    return store, ps_config, timeline


def baseline_store(setup: CompareSetup, paradigm: Literal["ptfs", "cpt"]) -> Store:
    """A baseline's own store holding copies of the shared tokenizer and versions."""
    source, store = data_store(setup.out), Store(join(setup.out, layout.compare_baseline(paradigm)))
    _mirror(source, store, layout.TOKENIZER, layout.TOKENIZER_JSON)
    for plan in setup.plans:
        _mirror(source, store, layout.data_dir(plan.version), layout.data_manifest(plan.version))
    return store


def _mirror(src: Store, dst: Store, folder: str, marker: str) -> None:
    """Copy ``folder`` from ``src`` to ``dst``; ``marker``, whose presence marks a complete copy, goes last."""
    if dst.exists(marker) and dst.read_bytes(marker) == src.read_bytes(marker):
        return
    files = [posixpath.join(folder, name) for name in src.walk_files(folder) if ".tmp-" not in name]
    for rel in sorted(files, key=lambda rel: rel == marker):
        dst.write_bytes(rel, src.read_bytes(rel))


def _copy_token_cache(src: Store, dst: Store, version: int) -> None:
    """The token cache files of one version's shards that ``dst`` lacks (content-addressed)."""
    manifest = load_manifest(src, version)
    for shard in manifest.shards:
        rel = layout.token_cache(manifest.tokenizer_sha256, shard.sha256)
        if src.exists(rel) and not dst.exists(rel):
            dst.write_bytes(rel, src.read_bytes(rel))


def _baseline_spec(
    store: Store, config: ProjectConfig, plan: VersionPlan, kind: Literal["ptfs", "cpt"], progress_bar: bool
) -> SegmentSpec:
    """PTFS of version i (from scratch, D_1..D_i in one global shuffle) or CPT of version i > 1
    (from v_{i-1}'s release, D_i in stream order); a baseline never takes optimizer state along."""
    o = config.optimizer
    if kind == "ptfs":
        start, length, order, init = 0, plan.cumulative_steps, "global", None
    else:
        start, length, order = plan.previous_cumulative_steps, plan.delta_steps, "within_version"
        init = layout.checkpoint(layout.baseline_run(plan.version - 1), start)
    lr = baseline_lr_path(kind, o.lr_max, o.lr_min, o.warmup_steps, start, length, BASELINE_SHAPE)
    run = layout.baseline_run(plan.version)
    return pipeline.segment_spec(
        store,
        config,
        run,
        init,
        start,
        start + length,
        lr,
        plan.version,
        progress_bar,
        order=order,
        init_optimizer=False,
        config_hash=settings_hash(config),
    )


def _train_and_evaluate(store: Store, spec: SegmentSpec, progress: ProgressFactory | None) -> ReleaseResult:
    """Run one baseline segment (unless its release checkpoint exists) and evaluate the release."""
    if spec.end_step not in list_checkpoints(store, spec.run):
        run_segment(store, spec, progress(spec.run) if progress else None)
    version = spec.data.versions[-1]
    checkpoint = layout.checkpoint(spec.run, spec.end_step)
    ppl = _evaluate(store, spec.run, checkpoint, spec.data.versions)
    steps = logged_steps(store, spec.run, spec.start_step, spec.end_step)
    return _release(store, checkpoint, version, steps, ppl)


def logged_steps(store: Store, run: str, start: int, end: int) -> int:
    """Optimizer steps in ``[start, end)`` that the run folder's loss log holds."""
    if not store.exists(layout.losses(run)):
        return 0
    return len({int(row[0]) for row in store.read_json(layout.losses(run)) if start <= row[0] < end})


def _evaluate(store: Store, run: str, checkpoint: str, versions: list[int]) -> Perplexity:
    """Perplexity of a release, cached in the run's ``eval.json`` against the checkpoint's manifest hash."""
    found = read_manifest(store, checkpoint, verify=False)
    sha = found[1] if found else None
    cache = layout.eval_cache(run)
    if sha and store.exists(cache):
        saved = store.read_json(cache)
        if saved.get("checkpoint_sha256") == sha and saved.get("versions") == versions:
            return Perplexity.model_validate(saved["ppl"])
    ppl = evaluate_checkpoint(store, checkpoint, versions)
    store.write_json(
        cache, {"checkpoint_sha256": sha, "versions": versions, "ppl": ppl.model_dump(mode="json")}
    )
    return ppl


def _release(store: Store, checkpoint: str, version: int, steps: int, ppl: Perplexity) -> ReleaseResult:
    return ReleaseResult(
        version=version,
        checkpoint=store.url_of(checkpoint),
        steps_run=steps,
        ppl=ppl.overall,
        ppl_per_version={f"v{v}": p for v, p in ppl.per_version.items()},
    )


def _finish_run(
    store: Store,
    paradigm: Paradigm,
    releases: list[ReleaseResult],
    started: float,
    record: str = layout.run_record(),
) -> ParadigmRun:
    result = ParadigmRun(
        paradigm=paradigm, store=store.url, releases=releases, seconds=time.perf_counter() - started
    )
    store.write_json(record, result.model_dump(mode="json"))
    return result
