"""PTFS vs CPT vs path switching on the same data, tokenizer, model, batch, LRs, warm-up and seed.

Layout under ``out``::

    data/                        shared data store: tokenizer (trained on v1), token cache, data/v{i}
    ptfs/v{i}/                   PTFS run of version i: from scratch, global shuffle of D_1..D_i, S_i steps
    cpt/v{i}/                    CPT run of version i: v1 = PTFS v1, then from v_{i-1}'s release, ΔT_i steps
    path_switching/alpha-{α}/    a store with its own timeline: main path + branches (lrpath_core.pipeline)
    compare.json                 the data and settings this folder was made with (a resume must match)
    results.json  results.txt  lr_paths.png  ppl_per_version.png  cost_vs_appl.png

The paradigm stores share nothing but the tokenizer and the data: PTFS and CPT get copies of the
data store's ``tokenizer/`` and ``data/``; the path-switching store gets ``tokenizer/`` and the
token cache and ingests the versions itself with :func:`runner.add_version` (every shard a cache
hit, so the same blocks), which gives it the timeline the runner's functions work on unchanged.
Decay shapes of one α share that store's main path and differ only in their branches, as
``rerun-branch`` does; PTFS and CPT do not depend on α or the branch shape, so a sweep over those
re-runs path switching only.

Steps run are counted from each segment's loss log (one row per optimizer step, kept across a
resume), so a segment killed and resumed still counts each step once; the main path's log holds
only its newest segment, so each main segment's count is kept in ``main_steps.json`` as it ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from lrpath_core import pipeline as runner
from lrpath_core.checkpoint import list_checkpoints, read_manifest, step_dir
from lrpath_core.config import DecayShape, ProjectConfig, load_config
from lrpath_core.data import ingest_version, list_shards, load_manifest, validate_shard
from lrpath_core.errors import LrpathError
from lrpath_core.evaluate import Perplexity, appl, evaluate_checkpoint
from lrpath_core.model_presets import PRESETS
from lrpath_core.planner import PlanRequest, make_plan
from lrpath_core.plots import plot_lr_paths
from lrpath_core.schedules import LRPath
from lrpath_core.storage import Store, join
from lrpath_core.timeline import Paradigm, VersionPlan, lr_paths, paradigm_steps, plan_versions
from lrpath_core.tokenizer import load_tokenizer
from lrpath_core.train import DataSpec, ProgressFn, SegmentSpec, run_segment

ORDER: tuple[Paradigm, ...] = ("ptfs", "cpt", "path_switching")
LABELS: dict[str, str] = {"ptfs": "PTFS", "cpt": "CPT", "path_switching": "path switching"}
BASELINE_SHAPE: DecayShape = "cosine"
"""PTFS and CPT decay with the paper's cosine whatever the branch shape (DESIGN.md §1)."""

QUICK_SIZING: dict[str, object] = {
    "data.vocab_size": 4096,
    "optimizer.seq_len": 128,
    "optimizer.batch_size": 16,
}
"""``quick``: the CPU demo's sizes (DESIGN.md §4) whatever the preset; otherwise the preset's own."""

DATA = "data"
GUARD = "compare.json"
VERSION_DIR = re.compile(r"^v(\d+)$")
MAIN_STEPS = "main_steps.json"
PLOTS = ("lr_paths.png", "ppl_per_version.png", "cost_vs_appl.png")

ProgressFactory = Callable[[str], ProgressFn | None]
"""Gives the progress callback of one segment from its name (``v2``, ``main-v1-to-fork``, ``branch-v1``)."""


class CompareError(LrpathError):
    """The comparison cannot run as asked; the message says why and what to change."""


class CompareSetup(BaseModel):
    """What every paradigm run needs: where things are and the versions' plan."""

    out: str
    data: str
    sources: list[str]
    plans: list[VersionPlan]
    alpha: float
    decay: DecayShape


class ReleaseResult(BaseModel):
    version: int
    checkpoint: str
    steps_run: int = Field(description="optimizer steps logged by the runs this release needed")
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


class ParadigmResult(BaseModel):
    appl: float
    relative_cost: float
    ppl: list[float]
    steps_run: int
    ppl_per_version: list[dict[str, float]]


class CompareResult(BaseModel):
    """``results.json``."""

    paradigms: dict[Paradigm, ParadigmResult]
    plan: dict[str, Any]
    config: dict[str, Any]


def compare_config(
    out: str,
    model: str = "tiny",
    quick: bool = True,
    alpha: float | None = None,
    decay: str | None = None,
    seed: int | None = None,
    config_path: str | None = None,
) -> ProjectConfig:
    """The comparison's configuration: ``config_path`` (if given) or the preset's sizes, then overrides."""
    preset = PRESETS.get(model)
    if config_path or preset is None:
        sizing: dict[str, object] = {}
    elif quick:
        sizing = dict(QUICK_SIZING)
    else:
        sizing = {"data.vocab_size": preset.vocab_size, "optimizer.seq_len": preset.seq_len}
    overrides = {
        "model.preset": model,
        "paradigm.alpha": alpha,
        "paradigm.decay": decay,
        "optimizer.seed": seed,
    }
    return load_config(config_path, store=out, **sizing, **overrides)


def settings_hash(config: ProjectConfig) -> str:
    """Hash of what PTFS, CPT and the data depend on: everything but the store, α and the branch shape."""
    payload = json.dumps(_settings(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _settings(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"store", "checkpoint_every", "paradigm"})


def version_sources(data: str, versions: int | None = None) -> list[str]:
    """URLs of ``data/v1`` … ``data/vN`` (all of them, or the first ``versions``)."""
    if versions is not None and versions < 1:
        raise CompareError(f"versions must be at least 1, got {versions}")
    store = Store(data)
    found = {int(m.group(1)): name for name in store.ls("") if (m := VERSION_DIR.match(name))}
    if not found:
        raise CompareError(
            f"{store.url} holds no version folders v1/, v2/, ...: prepare them first "
            f"(e.g. `lrpath data gcide --out {data}`)"
        )
    count = versions if versions is not None else max(found)
    missing = [i for i in range(1, count + 1) if i not in found]
    if missing:
        have = ", ".join(f"v{i}" for i in sorted(found))
        raise CompareError(
            f"{store.url} has no folder v{missing[0]}/ (it has {have}); ask for fewer versions"
        )
    return [store.url_of(found[i]) for i in range(1, count + 1)]


def prepare_comparison(
    data: str, out: str, config: ProjectConfig, versions: int | None = None
) -> CompareSetup:
    """Ingest the versions into the shared data store (once) and plan them; no training."""
    sources = version_sources(data, versions)
    root = Store(out)
    root.check_reachable()
    _check_guard(root, Store(data).url, config)
    data_store = Store(join(root.url, DATA))
    runner.bootstrap_tokenizer(data_store, config, sources[0])
    tokenizer = None
    deltas = []
    for number, source in enumerate(sources, start=1):
        data_sha = _source_sha256(source)
        if data_store.exists(f"data/v{number}/manifest.json"):
            manifest = load_manifest(data_store, number)
            if manifest.data_sha256 != data_sha:
                raise CompareError(
                    f"{source} is not the data that {data_store.url} ingested as version {number}; versions "
                    "are immutable: use another --out"
                )
        else:
            tokenizer = tokenizer or load_tokenizer(data_store, runner.TOKENIZER)
            manifest = ingest_version(
                data_store,
                number,
                source,
                tokenizer,
                seq_len=config.optimizer.seq_len,
                val_fraction=config.data.val_fraction,
                seed=config.optimizer.seed,
            )
        deltas.append(runner.steps_of(manifest, config))
    warmup = config.optimizer.warmup_steps
    plans = plan_versions(deltas, config.paradigm.alpha, warmup)
    short = [p.version for p in plans if p.delta_steps <= warmup]
    if short:
        raise CompareError(
            f"version {short[0]} fills {plans[short[0] - 1].delta_steps} steps, not more than the {warmup}-step "
            "warm-up that CPT re-runs on every version: add data or lower optimizer.warmup_steps"
        )
    return CompareSetup(
        out=root.url,
        data=Store(data).url,
        sources=sources,
        plans=plans,
        alpha=config.paradigm.alpha,
        decay=config.paradigm.decay,
    )


def _source_sha256(source: str) -> str:
    """The same content hash ``add_version`` and ``ingest_version`` record for a version folder."""
    shards = sorted(validate_shard(url).sha256 for url in list_shards(source))
    return hashlib.sha256("".join(shards).encode()).hexdigest()


def _check_guard(root: Store, data: str, config: ProjectConfig) -> None:
    wanted = {"data": data, "settings_hash": settings_hash(config), "settings": _settings(config)}
    if not root.exists(GUARD):
        root.write_json(GUARD, wanted)
        return
    saved = root.read_json(GUARD)
    if saved.get("data") != data:
        raise CompareError(
            f"{root.url} compares the data of {saved.get('data')}, not {data}: use another --out for other data"
        )
    if saved.get("settings_hash") != wanted["settings_hash"]:
        changed = _changed_keys(saved.get("settings", {}), wanted["settings"])
        raise CompareError(
            f"{root.url} was made with other settings ({', '.join(changed[:3]) or 'unknown'}); only alpha "
            "and decay may change between runs in one folder: use another --out"
        )


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}: {a} -> {b}")
    return keys


def _mirror(src: Store, dst: Store, rel: str, last: str | None = None) -> None:
    """Copy ``rel`` from ``src`` to ``dst``; ``last``, whose presence marks a complete copy, goes last.

    Without ``last`` (content-addressed files such as the token cache) only missing files are copied.
    """
    if (
        last
        and dst.exists(f"{rel}/{last}")
        and dst.read_bytes(f"{rel}/{last}") == src.read_bytes(f"{rel}/{last}")
    ):
        return
    names = [n for n in src.walk_files(rel) if ".tmp-" not in n]
    for name in sorted(names, key=lambda n: n == last):
        if last is None and dst.exists(f"{rel}/{name}"):
            continue
        dst.write_bytes(f"{rel}/{name}", src.read_bytes(f"{rel}/{name}"))


def _data_store(setup: CompareSetup) -> Store:
    return Store(join(setup.out, DATA))


def _baseline_store(setup: CompareSetup, paradigm: Literal["ptfs", "cpt"]) -> Store:
    """A paradigm's own store holding copies of the shared tokenizer and versions."""
    source, store = _data_store(setup), Store(join(setup.out, paradigm))
    _mirror(source, store, runner.TOKENIZER, "tokenizer.json")
    for plan in setup.plans:
        _mirror(source, store, f"data/v{plan.version}", "manifest.json")
    return store


def _spec(
    store: Store,
    config: ProjectConfig,
    version: int,
    start: int,
    end: int,
    lr_path: LRPath,
    order: Literal["within_version", "global"],
    init: str | None = None,
    progress_bar: bool = False,
) -> SegmentSpec:
    """Run ``v{version}`` on D_1..D_version; a baseline never takes optimizer state from ``init``."""
    o = config.optimizer
    return SegmentSpec(
        run=f"v{version}",
        init=init,
        init_optimizer=False,
        start_step=start,
        end_step=end,
        lr_path=lr_path,
        save_at=[end],
        checkpoint_every=config.checkpoint_every,
        data=DataSpec(
            versions=list(range(1, version + 1)), order=order, batch_size=o.batch_size, seed=o.seed
        ),
        model=config.model,
        optimizer=o,
        vocab_size=runner.vocab_size(store),
        config_hash=settings_hash(config),
        progress_bar=progress_bar,
    )


def _train_and_evaluate(store: Store, spec: SegmentSpec, progress: ProgressFactory | None) -> ReleaseResult:
    """Run one baseline segment (unless its release checkpoint exists) and evaluate the release."""
    if spec.end_step not in list_checkpoints(store, spec.run):
        run_segment(store, spec, progress(spec.run) if progress else None)
    version = spec.data.versions[-1]
    checkpoint = f"{spec.run}/{step_dir(spec.end_step)}"
    ppl = _evaluate(store, spec.run, checkpoint, spec.data.versions)
    steps = logged_steps(store, spec.run, spec.start_step, spec.end_step)
    return _release(store, checkpoint, version, steps, ppl)


def logged_steps(store: Store, run: str, start: int, end: int) -> int:
    """Optimizer steps in ``[start, end)`` that the run folder's loss log holds."""
    if not store.exists(f"{run}/losses.json"):
        return 0
    return len({int(row[0]) for row in store.read_json(f"{run}/losses.json") if start <= row[0] < end})


def _evaluate(store: Store, run: str, checkpoint: str, versions: list[int]) -> Perplexity:
    """Perplexity of a release, cached in ``{run}/eval.json`` against the checkpoint's manifest hash."""
    found = read_manifest(store, checkpoint, verify=False)
    sha = found[1] if found else None
    cache = f"{run}/eval.json"
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


def _lr_path(config: ProjectConfig, kind: Literal["ptfs", "cpt"], start: int, length: int) -> LRPath:
    o = config.optimizer
    return LRPath(
        kind=kind,
        lr_max=o.lr_max,
        lr_min=o.lr_min,
        warmup_steps=o.warmup_steps,
        start_step=start,
        length=length,
        shape=BASELINE_SHAPE,
    )


def run_ptfs(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """Version i from random init on D_1..D_i (one global shuffle): warm-up, cosine over S_i."""
    started = time.perf_counter()
    store = _baseline_store(setup, "ptfs")
    releases = []
    for plan in setup.plans:
        end = plan.cumulative_steps
        lr = _lr_path(config, "ptfs", 0, end)
        spec = _spec(store, config, plan.version, 0, end, lr, "global", progress_bar=progress_bar)
        releases.append(_train_and_evaluate(store, spec, progress))
    return _finish_run(store, "ptfs", releases, started)


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
    started = time.perf_counter()
    store = _baseline_store(setup, "cpt")
    releases = []
    for plan in setup.plans:
        i, start, end = plan.version, plan.previous_cumulative_steps, plan.cumulative_steps
        if i == 1:
            lr = _lr_path(config, "ptfs", 0, end)
            spec = _spec(store, config, 1, 0, end, lr, "global", progress_bar=progress_bar)
        else:
            lr = _lr_path(config, "cpt", start, plan.delta_steps)
            init = f"v{i - 1}/{step_dir(start)}"
            spec = _spec(store, config, i, start, end, lr, "within_version", init, progress_bar)
        releases.append(_train_and_evaluate(store, spec, progress))
    return _finish_run(store, "cpt", releases, started)


def path_switching_store(setup: CompareSetup) -> Store:
    return Store(join(setup.out, "path_switching", f"alpha-{setup.alpha:g}"))


def run_path_switching(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """The runner's timeline (main path to the fork, branch, main tail) in a store of its own."""
    started = time.perf_counter()
    source, store = _data_store(setup), path_switching_store(setup)
    _mirror(source, store, runner.TOKENIZER, "tokenizer.json")
    _mirror(source, store, "cache")
    # the store's saved config: a later call with another branch shape keeps the timeline's hash
    ps_config = runner.store_config(store, config.model_copy(update={"store": store.url}))
    timeline, _ = runner.load_timeline(store)
    known = len(timeline.versions) if timeline else 0
    for number, url in enumerate(setup.sources, start=1):
        if number > known:
            runner.add_version(store, ps_config, url)
        ours, shared = load_manifest(store, number), load_manifest(source, number)
        if (ours.data_sha256, ours.train_blocks, ours.val_blocks) != (
            shared.data_sha256,
            shared.train_blocks,
            shared.val_blocks,
        ):
            raise CompareError(
                f"version {number} in {store.url} differs from the shared data in {source.url}"
            )
    timeline = runner.require_timeline(store)
    if timeline.alpha != setup.alpha or timeline.plans()[: len(setup.plans)] != setup.plans:
        raise CompareError(f"the timeline in {store.url} plans other steps than the data store; remove it")

    def segment(name: str) -> ProgressFn | None:
        return progress(name) if progress else None

    decay, alpha = setup.decay, timeline.alpha
    releases = []
    for plan in setup.plans:
        i, end = plan.version, plan.cumulative_steps
        main_steps = _extend_main(store, ps_config, i, "fork", segment(f"main-v{i}-to-fork"), progress_bar)
        ref, fork, _ = runner.run_branch(
            store, ps_config, i, decay, progress=segment(f"branch-v{i}"), progress_bar=progress_bar
        )
        main_steps += _extend_main(store, ps_config, i, "end", segment(f"main-v{i}-to-end"), progress_bar)
        branch = runner.branch_run(i, decay, alpha)
        ppl = _evaluate(store, branch, f"{branch}/{step_dir(end)}", list(range(1, i + 1)))
        if decay == timeline.decay:
            runner.record_branch(store, i, ref, ppl)
        steps = main_steps + logged_steps(store, branch, fork, end)
        releases.append(_release(store, f"{branch}/{step_dir(end)}", i, steps, ppl))
    return _finish_run(store, "path_switching", releases, started, f"run-{decay}.json")


def _extend_main(
    store: Store,
    config: ProjectConfig,
    version: int,
    to: Literal["fork", "end"],
    progress: ProgressFn | None,
    progress_bar: bool,
) -> int:
    """``runner.extend_main``, returning the optimizer steps that segment of the main path logged.

    The main path's loss log holds only its newest segment, so each segment's count is read right
    after the segment ends and kept in ``main_steps.json`` (every branch shape reuses it).
    """
    key = f"v{version}-to-{to}"
    counts = store.read_json(MAIN_STEPS) if store.exists(MAIN_STEPS) else {}
    record = runner.require_timeline(store).version(version)
    done = record.fork_checkpoint if to == "fork" else record.version_end_checkpoint
    if done is not None and key in counts:
        return counts[key]
    start = record.cumulative_steps - record.delta_steps if to == "fork" else record.fork_step
    target = record.fork_step if to == "fork" else record.cumulative_steps
    if done is not None:
        raise CompareError(
            f"version {version}'s main-path segment to the {to} is recorded in {store.url} but its step "
            "count is not (was a run stopped right after it?): remove that folder to run path switching again"
        )
    runner.extend_main(store, config, version, to, progress=progress, progress_bar=progress_bar)
    counts[key] = logged_steps(store, runner.MAIN_RUN, start, target)
    store.write_json(MAIN_STEPS, counts)
    return counts[key]


def _finish_run(
    store: Store, paradigm: Paradigm, releases: list[ReleaseResult], started: float, name: str = "run.json"
) -> ParadigmRun:
    result = ParadigmRun(
        paradigm=paradigm, store=store.url, releases=releases, seconds=time.perf_counter() - started
    )
    store.write_json(name, result.model_dump(mode="json"))
    return result


def summarize(setup: CompareSetup, config: ProjectConfig, runs: dict[Paradigm, ParadigmRun]) -> CompareResult:
    """Check the steps run against the plan, then write results.json, results.txt and the plots."""
    planned = paradigm_steps(setup.plans)
    for name in ORDER:
        if runs[name].steps_run != planned[name]:
            raise CompareError(
                f"{name} ran {runs[name].steps_run} optimizer steps but its plan says {planned[name]}; "
                f"see {runs[name].store}"
            )
    ptfs_steps = runs["ptfs"].steps_run
    paradigms = {
        name: ParadigmResult(
            appl=appl([r.ppl for r in runs[name].releases]),
            relative_cost=runs[name].steps_run / ptfs_steps,
            ppl=[r.ppl for r in runs[name].releases],
            steps_run=runs[name].steps_run,
            ppl_per_version=[r.ppl_per_version for r in runs[name].releases],
        )
        for name in ORDER
    }
    o = config.optimizer
    request = PlanRequest(
        delta_steps=[p.delta_steps for p in setup.plans],
        alpha=setup.alpha,
        warmup_steps=o.warmup_steps,
        decay=setup.decay,
        lr_max=o.lr_max,
        lr_min=o.lr_min,
    )
    plan = {**make_plan(request).to_json_dict(), "baseline_decay": BASELINE_SHAPE, "sources": setup.sources}
    result = CompareResult(paradigms=paradigms, plan=plan, config=config.model_dump(mode="json"))
    root = Store(setup.out)
    root.write_text("results.json", json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    root.write_text("results.txt", format_table(result) + "\n")
    write_plots(root, setup, config, result)
    return result


def compare_paradigms(
    data: str,
    out: str,
    config: ProjectConfig,
    versions: int | None = None,
    progress_bar: bool = False,
) -> CompareResult:
    """Run PTFS, CPT and path switching on ``data``'s versions and write the comparison to ``out``.

    Resumable: finished segments and evaluations are found and reused, a half-done segment
    resumes from its newest checkpoint. Another ``paradigm.alpha``/``paradigm.decay`` in the same
    ``out`` re-runs path switching only.
    """
    setup = prepare_comparison(data, out, config, versions)
    runs = {
        "ptfs": run_ptfs(setup, config, progress_bar),
        "cpt": run_cpt(setup, config, progress_bar),
        "path_switching": run_path_switching(setup, config, progress_bar),
    }
    return summarize(setup, config, runs)


def _describe(result: CompareResult) -> str:
    c, plan = result.config, result.plan
    o = c["optimizer"]
    return (
        f"{len(plan['versions'])} versions · alpha {plan['alpha']:g} · branch decay {plan['decay']} · "
        f"model {c['model']['preset']} · vocab {c['data']['vocab_size']} · seq {o['seq_len']} · "
        f"batch {o['batch_size']} · lr {o['lr_max']:g}→{o['lr_min']:g} · warm-up {o['warmup_steps']} · "
        f"seed {o['seed']}"
    )


def table_rows(result: CompareResult) -> list[dict[str, Any]]:
    rows = []
    for name, r in result.paradigms.items():
        row: dict[str, Any] = {
            "paradigm": name,
            "steps": r.steps_run,
            "relative cost": round(r.relative_cost, 4),
        }
        row.update({f"PPL v{i}": round(p, 3) for i, p in enumerate(r.ppl, start=1)})
        row["APPL"] = round(r.appl, 3)
        rows.append(row)
    return rows


def format_table(result: CompareResult) -> str:
    """The results as text: PPL of each release, APPL and cost; then the last release per data version."""
    versions = len(result.plan["versions"])
    head = f"{'paradigm':<15} {'steps':>7} {'rel. cost':>9}" + "".join(
        f" {f'v{i} PPL':>9}" for i in range(1, versions + 1)
    )
    lines = [
        _describe(result),
        "",
        "PPL of release v_i on the validation data of D_1..D_i (token-weighted)",
        head + f" {'APPL':>9}",
    ]
    for name, r in result.paradigms.items():
        cells = "".join(f" {p:>9.3f}" for p in r.ppl)
        lines.append(f"{name:<15} {r.steps_run:>7} {r.relative_cost:>9.3f}{cells} {r.appl:>9.3f}")
    lines += ["", f"PPL of the last release (v{versions}) per data version"]
    lines.append(f"{'paradigm':<15}" + "".join(f" {f'D_{i}':>9}" for i in range(1, versions + 1)))
    for name, r in result.paradigms.items():
        last = r.ppl_per_version[-1]
        lines.append(f"{name:<15}" + "".join(f" {last[f'v{i}']:>9.3f}" for i in range(1, versions + 1)))
    return "\n".join(lines)


def markdown_report(result: CompareResult) -> str:
    rows = table_rows(result)
    header = list(rows[0])
    lines = [
        "### PTFS vs CPT vs path switching",
        "",
        _describe(result),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(row[k]) for k in header) + " |" for row in rows]
    planned = result.plan["paradigms"]
    lines += [
        "",
        "Relative cost = optimizer steps run / PTFS's; planned: "
        + ", ".join(f"{k} {v['relative_cost']:.3f}" for k, v in planned.items())
        + ". APPL = mean over releases of each release's PPL.",
    ]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLORS = {"ptfs": "tab:blue", "cpt": "tab:red", "path_switching": "tab:green"}


def plot_ppl_per_version(result: CompareResult, out: str, title: str | None = None) -> str:
    """Left: PPL of each release v_i on D_1..D_i; right: the last release's PPL on each D_j."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, r in result.paradigms.items():
        xs = list(range(1, len(r.ppl) + 1))
        left.plot(xs, r.ppl, marker="o", color=COLORS.get(name), label=f"{LABELS[name]} (APPL {r.appl:.2f})")
        last = r.ppl_per_version[-1]
        right.plot(xs, [last[f"v{i}"] for i in xs], marker="s", color=COLORS.get(name), label=LABELS[name])
    left.set_xlabel("release v_i")
    left.set_ylabel("PPL on D_1..D_i (validation)")
    left.set_title("PPL of each version's release", fontsize=10, loc="left")
    right.set_xlabel("data version D_j")
    right.set_ylabel("PPL of the last release")
    right.set_title("last release, per data version", fontsize=10, loc="left")
    for ax in (left, right):
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_cost_vs_appl(points: list[tuple[str, str, float, float]], out: str, title: str | None = None) -> str:
    """Relative cost vs APPL (the paper's Figure 2); ``points`` are ``(paradigm, label, cost, appl)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for paradigm, label, cost, value in points:
        ax.scatter([cost], [value], s=60, color=COLORS.get(paradigm, "0.4"), zorder=3)
        ax.annotate(label, (cost, value), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("relative cost (optimizer steps / PTFS's)")
    ax.set_ylabel("APPL (mean PPL of the releases)")
    ax.set_xlim(0, max(1.1, max(p[2] for p in points) + 0.1))
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_plots(root: Store, setup: CompareSetup, config: ProjectConfig, result: CompareResult) -> list[str]:
    o = config.optimizer
    paths = lr_paths(setup.plans, o.lr_max, o.lr_min, o.warmup_steps, BASELINE_SHAPE)
    paths["path_switching"] = lr_paths(setup.plans, o.lr_max, o.lr_min, o.warmup_steps, setup.decay)[
        "path_switching"
    ]
    title = f"{len(setup.plans)} versions, alpha={setup.alpha:g}, branch decay={setup.decay}"
    points = [(name, LABELS[name], r.relative_cost, r.appl) for name, r in result.paradigms.items()]
    with tempfile.TemporaryDirectory(prefix="lrpath-compare-") as tmp:
        files = [os.path.join(tmp, name) for name in PLOTS]
        plot_lr_paths(paths, files[0], title=title)
        plot_ppl_per_version(result, files[1], title=title)
        plot_cost_vs_appl(points, files[2], title=title)
        for name, path in zip(PLOTS, files, strict=True):
            with open(path, "rb") as f:
                root.write_bytes(name, f.read())
    return [root.url_of(name) for name in PLOTS]
