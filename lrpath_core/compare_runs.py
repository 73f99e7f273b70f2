"""What every paradigm run of a comparison shares, and path switching's run.

Every paradigm trains in a store of its own. The baselines (:mod:`lrpath_core.compare_baselines`)
and the related work's paradigms (:mod:`lrpath_core.compare_related`) train plain segments in
stores holding copies of the seed's shared tokenizer and versions, and count their steps from
each run's loss log (one row per optimizer step, kept across a resume). Path switching is the
pipeline's own DAG (main path to the fork, branch, main tail) on a store with a timeline; its
steps come from ``timeline.segments``, where the pipeline records every finished segment once.
Each release's PPL is cached next to its run, keyed by the checkpoint's manifest hash, so a
resumed or repeated comparison trains and evaluates nothing twice.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from lrpath_core import layout, pipeline
from lrpath_core.checkpoint import list_checkpoints, read_manifest
from lrpath_core.compare_setup import CompareError, CompareSetup, data_store, settings_hash
from lrpath_core.config import ProjectConfig
from lrpath_core.evaluate import Perplexity, evaluate_checkpoint
from lrpath_core.ingest import add_version
from lrpath_core.packing import load_manifest
from lrpath_core.schedules import LRPath
from lrpath_core.segment import SegmentSpec
from lrpath_core.storage import Store, join
from lrpath_core.timeline import Paradigm, Timeline
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
    seed: int = 0
    store: str
    releases: list[ReleaseResult]
    seconds: float = Field(description="wall time of the call that returned this (resumed work is quick)")

    @property
    def steps_run(self) -> int:
        return sum(r.steps_run for r in self.releases)


# every run_* function has this signature: the flow and compare.py call them alike
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
        ppl = evaluate_release(store, run, checkpoint, list(range(1, i + 1)))
        if decay == timeline.decay:
            pipeline.record_branch(store, branch, ppl)
        steps = release_steps(store, branch)
        releases.append(make_release(store, checkpoint, i, steps, ppl))
    return finish_run(store, "path_switching", setup, releases, started, layout.run_record(decay))


def release_steps(store: Store, branch: pipeline.Branch) -> int:
    """Steps a path-switching release needed: its version's main segments (S_{i-1} → fork → S_i; a
    segment of no steps does not exist) and its branch, as ``timeline.segments`` recorded them.

    A fork at a retained checkpoint before S_{i-1} (a small update after a large version) leaves the
    version's main path one segment, S_{i-1} → S_i."""
    timeline = require_timeline(store)
    record = timeline.version(branch.version)
    run = layout.branch_run(branch.version, branch.decay, branch.alpha)
    start, end = record.previous_cumulative_steps, record.cumulative_steps
    fork = max(start, record.fork_step)
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
    return Store(join(setup.root, layout.compare_path_switching(setup.alpha)))


def _path_switching_timeline(
    setup: CompareSetup, config: ProjectConfig
) -> tuple[Store, ProjectConfig, Timeline]:
    """The path-switching store with the shared versions ingested into its timeline.

    It gets the shared tokenizer and token cache, so its ingest finds every shard cached and
    packs the same blocks; decay shapes of one α share this store, its main path and timeline.
    """
    source, store = data_store(setup.root), path_switching_store(setup)
    mirror(source, store, layout.TOKENIZER, layout.TOKENIZER_JSON)
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


def mirrored_store(setup: CompareSetup, rel: str) -> Store:
    """A paradigm's own store at ``rel`` in the seed's folder, holding copies of the shared
    tokenizer and versions."""
    source, store = data_store(setup.root), Store(join(setup.root, rel))
    mirror(source, store, layout.TOKENIZER, layout.TOKENIZER_JSON)
    for plan in setup.plans:
        mirror(source, store, layout.data_dir(plan.version), layout.data_manifest(plan.version))
    return store


def mirror(src: Store, dst: Store, folder: str, marker: str) -> None:
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


def plain_spec(
    store: Store,
    config: ProjectConfig,
    run: str,
    init: str | None,
    start: int,
    end: int,
    lr: LRPath,
    version: int,
    progress_bar: bool,
    *,
    order: Literal["within_version", "global"] = "within_version",
    init_optimizer: bool = True,
    save_at: list[int] | None = None,
) -> SegmentSpec:
    """A segment of a paradigm other than path switching, kept at its end step (and ``save_at``),
    hashed by the comparison's settings (not the store's: these stores have no timeline)."""
    return pipeline.segment_spec(
        store,
        config,
        run,
        init,
        start,
        end,
        lr,
        version,
        progress_bar,
        save_at,
        order=order,
        init_optimizer=init_optimizer,
        config_hash=settings_hash(config),
    )


def train_segment(store: Store, spec: SegmentSpec, progress: ProgressFactory | None, name: str) -> None:
    """Run one segment unless its end checkpoint exists (it resumes from its newest checkpoint)."""
    if spec.end_step not in list_checkpoints(store, spec.run):
        run_segment(store, spec, progress(name) if progress else None)


def train_and_evaluate(
    store: Store,
    spec: SegmentSpec,
    progress: ProgressFactory | None,
    name: str | None = None,
    eval_run: str | None = None,
) -> ReleaseResult:
    """Run one segment whose end is a release (unless done) and evaluate that release (its cache in
    ``eval_run``, default the segment's run folder)."""
    train_segment(store, spec, progress, name or spec.run)
    version = spec.data.versions[-1]
    checkpoint = layout.checkpoint(spec.run, spec.end_step)
    ppl = evaluate_release(store, eval_run or spec.run, checkpoint, spec.data.versions)
    steps = logged_steps(store, spec.run, spec.start_step, spec.end_step)
    return make_release(store, checkpoint, version, steps, ppl)


def logged_steps(store: Store, run: str, start: int, end: int) -> int:
    """Optimizer steps in ``[start, end)`` that the run folder's loss log holds."""
    if not store.exists(layout.losses(run)):
        return 0
    return len({int(row[0]) for row in store.read_json(layout.losses(run)) if start <= row[0] < end})


def evaluate_release(store: Store, run: str, checkpoint: str, versions: list[int]) -> Perplexity:
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


def make_release(store: Store, checkpoint: str, version: int, steps: int, ppl: Perplexity) -> ReleaseResult:
    return ReleaseResult(
        version=version,
        checkpoint=store.url_of(checkpoint),
        steps_run=steps,
        ppl=ppl.overall,
        ppl_per_version={f"v{v}": p for v, p in ppl.per_version.items()},
    )


def finish_run(
    store: Store,
    paradigm: Paradigm,
    setup: CompareSetup,
    releases: list[ReleaseResult],
    started: float,
    record: str = layout.run_record(),
) -> ParadigmRun:
    """The run's summary, also kept in its store (``run.json``, or one per decay shape)."""
    result = ParadigmRun(
        paradigm=paradigm,
        seed=setup.seed,
        store=store.url,
        releases=releases,
        seconds=time.perf_counter() - started,
    )
    store.write_json(record, result.model_dump(mode="json"))
    return result
