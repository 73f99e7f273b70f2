"""The path-switching timeline on a store, step by step and whole, without Prefect.

Each function is one node of DESIGN.md §2's DAG and is what a Prefect task wraps:

``bootstrap_tokenizer`` → ``add_version`` (ingest) → ``extend_main(to="fork")`` →
``run_branch`` ∥ ``extend_main(to="end")`` → ``evaluate_branch``.

``run_timeline`` strings them together for plain ``python``. Every step is idempotent: a step
whose result is already in ``timeline.json`` returns it; a step that died half-way resumes from
its newest checkpoint.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Literal

from lrpath_core.checkpoint import read_manifest, step_dir
from lrpath_core.config import DecayShape, ProjectConfig
from lrpath_core.data import (
    ShardError,
    VersionManifest,
    ingest_version,
    list_shards,
    read_documents,
    validate_shard,
)
from lrpath_core.evaluate import Perplexity, appl, evaluate_checkpoint
from lrpath_core.incoming import hold, incoming_name
from lrpath_core.schedules import LRPath
from lrpath_core.storage import StaleStateError, Store
from lrpath_core.timeline import (
    CheckpointRef,
    Release,
    Timeline,
    TimelineError,
    VersionRecord,
    branch_length,
    plan_versions,
)
from lrpath_core.tokenizer import load_tokenizer, save_tokenizer, tokenizer_sha256, train_tokenizer
from lrpath_core.train import DataSpec, ProgressFn, SegmentSpec, run_segment

TIMELINE = "timeline.json"
CONFIG = "config.json"
TOKENIZER = "tokenizer"
MAIN_RUN = "checkpoints/main"


def load_timeline(store: Store) -> tuple[Timeline | None, int]:
    raw, generation = store.read_json_generation(TIMELINE)
    return (Timeline.model_validate(raw) if raw is not None else None), generation


def update_timeline(store: Store, change: Callable[[Timeline | None], Timeline]) -> Timeline:
    """Read-modify-write ``timeline.json``: under the store lock locally, optimistic on object stores.

    A writer that lost a race (another task wrote in between) re-reads and re-applies ``change``,
    so concurrent tasks (a branch and the main tail) never lose each other's updates.
    """
    attempts = 8
    for attempt in range(attempts):
        with store.lock(TIMELINE):
            current, generation = load_timeline(store)
            updated = change(current.model_copy(deep=True) if current else None)
            state = updated.model_dump(mode="json", exclude={"generation"})
            try:
                store.write_json_checked(TIMELINE, state, generation)
            except StaleStateError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            return updated.model_copy(update={"generation": generation + 1})
    raise AssertionError("unreachable")


def require_timeline(store: Store) -> Timeline:
    timeline, _ = load_timeline(store)
    if timeline is None:
        raise TimelineError(f"no timeline in {store.url}: ingest a first version (lrpath ingest PATH --now)")
    return timeline


def store_config(store: Store, fallback: ProjectConfig | None = None) -> ProjectConfig:
    """The configuration a store's timeline was started with (saved at its first ingest).

    Later runs (a deployment triggered by an event, a re-run) read it from the store, so every
    version of a timeline trains with the same settings.
    """
    if store.exists(CONFIG):
        saved = ProjectConfig.model_validate(store.read_json(CONFIG))
        return saved.model_copy(update={"store": store.url})
    config = fallback or ProjectConfig()
    return config.model_copy(update={"store": store.url})


def save_config(store: Store, config: ProjectConfig) -> None:
    if not store.exists(CONFIG):
        store.write_json(CONFIG, config.model_dump(mode="json"))


def bootstrap_tokenizer(store: Store, config: ProjectConfig, first_source: str) -> str:
    """Train the project's tokenizer once, on version 1's text; afterwards it never changes."""
    if store.exists(f"{TOKENIZER}/tokenizer.json"):
        return store.url_of(TOKENIZER)
    texts: list[str] = []
    for shard in list_shards(first_source, store.storage_options):
        texts.extend(read_documents(shard, store.storage_options))
    tokenizer = train_tokenizer(texts, config.data.vocab_size)
    return save_tokenizer(tokenizer, store, TOKENIZER)


def steps_of(manifest: VersionManifest, config: ProjectConfig) -> int:
    """ΔT_i: one pass over the version's training blocks at the configured batch size."""
    steps = manifest.train_blocks // config.optimizer.batch_size
    if steps < 1:
        raise TimelineError(
            f"version {manifest.version} has {manifest.train_blocks} training blocks, fewer than one batch of "
            f"{config.optimizer.batch_size}: add data or lower optimizer.batch_size"
        )
    return steps


def add_version(
    store: Store, config: ProjectConfig, source_url: str, name: str | None = None
) -> VersionRecord:
    """Ingest a version's shards and append it to the timeline (idempotent on identical content)."""
    timeline, _ = load_timeline(store)
    name = name or source_url.rstrip("/").rsplit("/", 1)[-1]
    checks = validate_drop(store, source_url, name)
    data_sha = hashlib.sha256("".join(sorted(checks)).encode()).hexdigest()
    if timeline is not None:
        for record in timeline.versions:
            if record.data_sha256 == data_sha:
                return record
            if record.name == name:
                raise TimelineError(
                    f"version {record.version} is already named {name!r} with other content; versions are "
                    "immutable: give the new data another name"
                )
        if timeline.config_hash != config.training_hash():
            raise TimelineError(
                f"the configuration changed since this timeline started (hash {timeline.config_hash}, now "
                f"{config.training_hash()}); use the original lrpath.yaml or a new store"
            )
    number = len(timeline.versions) + 1 if timeline else 1
    if number == 1:
        save_config(store, config)
        bootstrap_tokenizer(store, config, source_url)
    tokenizer = load_tokenizer(store, TOKENIZER)
    manifest = ingest_version(
        store,
        number,
        source_url,
        tokenizer,
        seq_len=config.optimizer.seq_len,
        val_fraction=config.data.val_fraction,
        seed=config.optimizer.seed,
        name=name,
        storage_options=store.storage_options,
    )
    delta = steps_of(manifest, config)

    def append(current: Timeline | None) -> Timeline:
        timeline = current or Timeline(
            config_hash=config.training_hash(),
            alpha=config.paradigm.alpha,
            decay=config.paradigm.decay,
            tokenizer=tokenizer_sha256(tokenizer),
        )
        for record in timeline.versions:
            if record.data_sha256 == manifest.data_sha256:
                return timeline
        if len(timeline.versions) + 1 != number:
            raise TimelineError(
                f"another run added version {len(timeline.versions)} meanwhile; retry the ingest"
            )
        plan = plan_versions(
            [v.delta_steps for v in timeline.versions] + [delta],
            timeline.alpha,
            config.optimizer.warmup_steps,
        )[-1]
        timeline.versions.append(
            VersionRecord(
                name=name,
                data_manifest=store.url_of(f"data/v{number}/manifest.json"),
                data_sha256=data_sha,
                status="ingested",
                **plan.model_dump(),
            )
        )
        return timeline

    return update_timeline(store, append).version(number)


class DropRejected(ShardError):
    """A data drop has bad files; the version is held and the timeline unchanged."""


def validate_drop(store: Store, source_url: str, name: str) -> list[str]:
    """sha256 of every shard of a drop, after checking them all; any bad file holds the whole drop.

    Bad files of a drop in the store's ``incoming/`` are moved to ``quarantine/`` with a reason.
    """
    problems: list[tuple[str, str]] = []
    digests: list[str] = []
    try:
        shards = list_shards(source_url, store.storage_options)
    except ShardError as exc:
        shards, problems = [], [(source_url, str(exc))]
    for url in shards:
        try:
            digests.append(validate_shard(url, store.storage_options).sha256)
        except ShardError as exc:
            problems.append((url, str(exc)))
    if not problems:
        return digests
    where = ""
    if incoming_name(store, source_url) == name and shards:
        where = f"; bad files moved to {hold(store, name, problems)} with a reason each"
    elif incoming_name(store, source_url) == name:
        hold(store, name, [])
    detail = "; ".join(p for _, p in problems)
    raise DropRejected(
        f"data drop {name!r} is held ({len(problems)} problem(s)): {detail}{where}. Fix and re-upload the "
        f"files, or accept the {len(digests)} valid file(s) as they are: then run `lrpath release {name}`"
    )


def _segment_spec(
    config: ProjectConfig,
    run: str,
    init: str | None,
    start: int,
    end: int,
    lr_path: LRPath,
    versions: list[int],
    save_at: list[int],
    vocab_size: int,
    order: Literal["within_version", "global"] = "within_version",
    progress_bar: bool = False,
) -> SegmentSpec:
    return SegmentSpec(
        run=run,
        init=init,
        start_step=start,
        end_step=end,
        lr_path=lr_path,
        save_at=save_at,
        checkpoint_every=config.checkpoint_every,
        data=DataSpec(
            versions=versions, order=order, batch_size=config.optimizer.batch_size, seed=config.optimizer.seed
        ),
        model=config.model,
        optimizer=config.optimizer,
        vocab_size=vocab_size,
        config_hash=config.training_hash(),
        progress_bar=progress_bar,
    )


def vocab_size(store: Store) -> int:
    return len(load_tokenizer(store, TOKENIZER))


def main_lr_path(config: ProjectConfig) -> LRPath:
    o = config.optimizer
    return LRPath(kind="main", lr_max=o.lr_max, lr_min=o.lr_min, warmup_steps=o.warmup_steps)


def _ref(store: Store, rel: str, step: int) -> CheckpointRef:
    found = read_manifest(store, rel, verify=False)
    return CheckpointRef(url=store.url_of(rel), step=step, sha256=found[1] if found else None)


def main_checkpoint_rel(step: int) -> str:
    return f"{MAIN_RUN}/{step_dir(step)}"


def extend_main(
    store: Store,
    config: ProjectConfig,
    version: int,
    to: Literal["fork", "end"],
    progress: ProgressFn | None = None,
    progress_bar: bool = False,
) -> CheckpointRef:
    """Train the main path (constant η_max) up to version ``version``'s fork step or its end.

    The main path always starts from its own checkpoint: the previous version's end (``S_{i-1}``)
    or this version's fork; never from a branch.
    """
    record = require_timeline(store).version(version)
    target = record.fork_step if to == "fork" else record.cumulative_steps
    existing = record.fork_checkpoint if to == "fork" else record.version_end_checkpoint
    if existing is not None:
        return existing
    start = record.cumulative_steps - record.delta_steps if to == "fork" else record.fork_step
    if target == 0 or (to == "fork" and target == start):
        ref = _ref(store, main_checkpoint_rel(start), start) if start > 0 else None
        if ref is None:
            raise TimelineError(f"version {version} forks at step 0: no main-path checkpoint can exist there")
    else:
        init = main_checkpoint_rel(start) if start > 0 else None
        if init is not None and read_manifest(store, init, verify=False, missing_ok=True) is None:
            raise TimelineError(
                f"main-path checkpoint {store.url_of(init)} is missing: run the update for version "
                f"{version - 1 if to == 'fork' else version} first"
            )
        spec = _segment_spec(
            config,
            MAIN_RUN,
            init,
            start,
            target,
            main_lr_path(config),
            list(range(1, version + 1)),
            [target],
            vocab_size(store),
            progress_bar=progress_bar,
        )
        result = run_segment(store, spec, progress)
        ref = result.checkpoints[target]
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

    update_timeline(store, record_ref)
    return ref


def _count_steps(store: Store, path: Literal["main", "branch"], spec: SegmentSpec) -> None:
    """Record a finished segment's steps once, keyed by the segment.

    Counting per segment (not per process run) keeps the cost exact when a segment was killed
    and resumed (its steps count once, in full) or run again when already complete (no change).
    """
    key = f"{path}:{spec.run}:{spec.start_step}-{spec.end_step}"

    def put(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        timeline.segments[key] = spec.end_step - spec.start_step
        for kind in ("main", "branch"):
            total = sum(n for k, n in timeline.segments.items() if k.startswith(f"{kind}:"))
            setattr(timeline.steps_run, kind, total)
        return timeline

    current = require_timeline(store)
    if key not in current.segments:
        update_timeline(store, put)


def branch_run(version: int, decay: DecayShape, alpha: float) -> str:
    return f"checkpoints/branches/v{version}-{decay}-a{alpha:g}"


def branch_plan(store: Store, version: int, alpha: float | None = None) -> tuple[int, int]:
    """``(fork step, branch steps)`` of a branch of ``version`` with ``alpha``, refused early when
    the main path kept no checkpoint at that fork (it keeps them at fork points and version ends)."""
    timeline = require_timeline(store)
    record = timeline.version(version)
    if alpha is None or alpha == timeline.alpha:
        fork, branch_steps = record.fork_step, record.branch_steps
    else:
        if not 0 < alpha < 1:
            raise TimelineError(f"alpha must be strictly between 0 and 1, got {alpha}")
        branch_steps = min(branch_length(alpha, record.cumulative_steps), record.delta_steps)
        fork = record.cumulative_steps - branch_steps
    fork_rel = main_checkpoint_rel(fork)
    if read_manifest(store, fork_rel, verify=False, missing_ok=True) is None:
        kept = sorted({s for v in timeline.versions for s in (v.fork_step, v.cumulative_steps)})
        raise TimelineError(
            f"no main-path checkpoint at step {fork} ({store.url_of(fork_rel)}) to fork version {version}'s "
            f"branch from (alpha={alpha if alpha is not None else timeline.alpha}); the main path keeps "
            f"checkpoints only at fork points and version ends (steps {', '.join(map(str, kept))})"
        )
    return fork, branch_steps


def run_branch(
    store: Store,
    config: ProjectConfig,
    version: int,
    decay: DecayShape | None = None,
    alpha: float | None = None,
    progress: ProgressFn | None = None,
    progress_bar: bool = False,
) -> tuple[CheckpointRef, int, int]:
    """Decay a branch of ``version`` from its main-path fork checkpoint to η_min.

    Returns ``(branch-end checkpoint, fork step, branch steps)``. Another α moves the fork; the
    main-path checkpoint there must already exist (the main path is never re-trained for it).
    """
    timeline = require_timeline(store)
    record = timeline.version(version)
    fork, branch_steps = branch_plan(store, version, alpha)
    decay = decay or timeline.decay
    alpha = alpha if alpha is not None else timeline.alpha
    fork_rel = main_checkpoint_rel(fork)
    o = config.optimizer
    lr_path = LRPath(
        kind="branch", lr_max=o.lr_max, lr_min=o.lr_min, start_step=fork, length=branch_steps, shape=decay
    )
    end = record.cumulative_steps
    spec = _segment_spec(
        config,
        branch_run(version, decay, alpha),
        fork_rel,
        fork,
        end,
        lr_path,
        list(range(1, version + 1)),
        [end],
        vocab_size(store),
        progress_bar=progress_bar,
    )
    result = run_segment(store, spec, progress)
    _count_steps(store, "branch", spec)
    return result.checkpoints[end], fork, branch_steps


def evaluate_branch(store: Store, version: int, checkpoint_url: str) -> Perplexity:
    rel = (
        checkpoint_url[len(store.url) :].lstrip("/")
        if checkpoint_url.startswith(store.url)
        else checkpoint_url
    )
    return evaluate_checkpoint(store, rel, list(range(1, version + 1)))


def record_branch(store: Store, version: int, ref: CheckpointRef, ppl: Perplexity) -> Timeline:
    def put(timeline: Timeline | None) -> Timeline:
        assert timeline is not None
        rec = timeline.version(version)
        rec.branch_checkpoint = ref
        rec.metrics = ppl.as_metrics()
        return timeline

    return update_timeline(store, put)


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


def unreleased_versions(timeline: Timeline) -> list[int]:
    return [v.version for v in timeline.versions if not v.releases]


def timeline_appl(timeline: Timeline) -> float | None:
    ppls = [v.metrics["ppl"] for v in timeline.versions if "ppl" in v.metrics]
    return appl(ppls) if ppls else None


def update_version(
    store: Store, config: ProjectConfig, version: int, progress_bar: bool = False
) -> VersionRecord:
    """One version's whole DAG in order (the plain-Python twin of the ``version-update`` flow)."""
    extend_main(store, config, version, "fork", progress_bar=progress_bar)
    ref, _, _ = run_branch(store, config, version, progress_bar=progress_bar)
    ppl = evaluate_branch(store, version, ref.url)
    record_branch(store, version, ref, ppl)
    extend_main(store, config, version, "end", progress_bar=progress_bar)
    return require_timeline(store).version(version)


def run_timeline(
    store: Store, config: ProjectConfig, sources: list[str], progress_bar: bool = False
) -> Timeline:
    """Ingest every source folder in order and bring each version to a released branch."""
    store.check_reachable()
    for source in sources:
        record = add_version(store, config, source)
        update_version(store, config, record.version, progress_bar=progress_bar)
    return require_timeline(store)
