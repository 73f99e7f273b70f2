"""The baselines of a comparison: PTFS, CPT and CPT with replay, each decaying in the comparison's shape.

Equal terms: one ``decay`` shape applies to every paradigm, so each baseline's store is keyed by
it (``ptfs/1-sqrt`` is never reused for a cosine comparison). CPT keeps the AdamW moments of the
previous release by default (they are saved with every checkpoint);
``CompareSettings.cpt_optimizer = "reset"`` starts a fresh AdamW each version, in its own folder.
"""

from __future__ import annotations

import time
from typing import Literal

from lrpath_core import layout
from lrpath_core.compare_replay import mix_replay
from lrpath_core.compare_runs import (
    ParadigmRun,
    ProgressFactory,
    finish_run,
    mirrored_store,
    plain_spec,
    train_and_evaluate,
)
from lrpath_core.compare_setup import CompareSetup, data_store
from lrpath_core.config import ProjectConfig
from lrpath_core.segment import SegmentSpec
from lrpath_core.storage import Store
from lrpath_core.timeline import VersionPlan, baseline_lr_path


def run_ptfs(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """Version i from random init on D_1..D_i (one global shuffle): warm-up, decay over S_i."""
    started = time.perf_counter()
    store = mirrored_store(setup, layout.compare_baseline("ptfs", setup.decay))
    releases = [
        train_and_evaluate(store, baseline_spec(store, config, setup, plan, "ptfs", progress_bar), progress)
        for plan in setup.plans
    ]
    return finish_run(store, "ptfs", setup, releases, started)


def run_cpt(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """v1 = PTFS v1 (run again here); version i>1 from v_{i-1}'s release on D_i only: re-warm
    η_min → η_max over W steps, decay to η_min over the rest of ΔT_i, AdamW kept or reset."""
    started = time.perf_counter()
    store = cpt_store(setup, "cpt")
    releases = _cpt_releases(store, config, setup, progress_bar, progress)
    return finish_run(store, "cpt", setup, releases, started)


def run_cpt_replay(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """CPT on data where ``replay_fraction`` of each update's blocks come from earlier versions
    (:mod:`lrpath_core.compare_replay`): same steps, LR path and optimizer choice as CPT."""
    started = time.perf_counter()
    store = cpt_store(setup, "cpt_replay")
    mix_replay(data_store(setup.root), store, len(setup.plans), setup.settings.replay_fraction, setup.seed)
    releases = _cpt_releases(store, config, setup, progress_bar, progress)
    return finish_run(store, "cpt_replay", setup, releases, started)


def cpt_store(setup: CompareSetup, paradigm: Literal["cpt", "cpt_replay"]) -> Store:
    """``cpt/{keep|reset}/{decay}`` or ``cpt_replay/{keep|reset}-r{fraction}/{decay}``."""
    s = setup.settings
    variant = s.cpt_optimizer if paradigm == "cpt" else f"{s.cpt_optimizer}-r{s.replay_fraction:g}"
    return mirrored_store(setup, layout.compare_baseline(paradigm, setup.decay, variant))


def _cpt_releases(
    store: Store,
    config: ProjectConfig,
    setup: CompareSetup,
    progress_bar: bool,
    progress: ProgressFactory | None,
):
    return [
        train_and_evaluate(
            store,
            baseline_spec(store, config, setup, plan, "ptfs" if plan.version == 1 else "cpt", progress_bar),
            progress,
        )
        for plan in setup.plans
    ]


def baseline_spec(
    store: Store,
    config: ProjectConfig,
    setup: CompareSetup,
    plan: VersionPlan,
    kind: Literal["ptfs", "cpt"],
    progress_bar: bool,
) -> SegmentSpec:
    """PTFS of version i (from scratch, D_1..D_i in one global shuffle) or CPT of version i > 1
    (from v_{i-1}'s release, D_i in stream order, its AdamW moments unless ``cpt_optimizer`` is reset)."""
    o = config.optimizer
    if kind == "ptfs":
        start, length, order, init = 0, plan.cumulative_steps, "global", None
    else:
        start, length, order = plan.previous_cumulative_steps, plan.delta_steps, "within_version"
        init = layout.checkpoint(layout.baseline_run(plan.version - 1), start)
    lr = baseline_lr_path(kind, o.lr_max, o.lr_min, o.warmup_steps, start, length, setup.decay)
    return plain_spec(
        store,
        config,
        layout.baseline_run(plan.version),
        init,
        start,
        start + length,
        lr,
        plan.version,
        progress_bar,
        order=order,
        init_optimizer=init is not None and setup.settings.cpt_optimizer == "keep",
    )
