"""The related work's paradigms in a comparison: WSD-S (Wen et al. 2024) and the infinite schedule
(Ibrahim et al. 2024), on the same data, model, seeds and η as the others.

WSD-S is one trajectory (``trajectory/`` in its store): version i's segment (re-)warms up, trains
at η_max and decays over its last ``min(ceil(α·S_i), ΔT_i − W)`` steps; its end is the release
and the next version continues from it, optimizer state and all. The infinite schedule has
path switching's structure on a main path that cools down to a plateau η_const: each version's
main segment keeps the fork checkpoints (the plan's retained steps), and the release anneals from
the plateau over the branch's steps. Both LR paths come from :func:`lrpath_core.timeline.lr_paths`,
so what runs is what the figure shows.
"""

from __future__ import annotations

import time

from lrpath_core import layout
from lrpath_core.compare_runs import (
    ParadigmRun,
    ProgressFactory,
    evaluate_release,
    finish_run,
    logged_steps,
    make_release,
    mirrored_store,
    plain_spec,
    train_and_evaluate,
    train_segment,
)
from lrpath_core.compare_setup import CompareSetup
from lrpath_core.config import ProjectConfig
from lrpath_core.timeline import Paradigm, Run, lr_paths


def setup_lr_paths(setup: CompareSetup, config: ProjectConfig) -> dict[Paradigm, list[Run]]:
    """Every paradigm's LR paths for this comparison: its plans, η, warm-up, shape and settings."""
    o, s = config.optimizer, setup.settings
    return lr_paths(
        setup.plans,
        o.lr_max,
        o.lr_min,
        o.warmup_steps,
        setup.decay,
        plateau_ratio=s.infinite_plateau_ratio,
        cooldown_fraction=s.infinite_cooldown,
    )


def run_wsd_s(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """One trajectory; each version decays at its end, is released, and the next re-warms from it."""
    started = time.perf_counter()
    store = mirrored_store(setup, layout.compare_wsd_s(setup.alpha, setup.decay))
    run = layout.TRAJECTORY_RUN
    releases = []
    for _, version, lr, start, end in setup_lr_paths(setup, config)["wsd_s"]:
        init = layout.checkpoint(run, start) if start > 0 else None
        spec = plain_spec(store, config, run, init, start, end, lr, version, progress_bar)
        eval_run = layout.compare_eval_run(run, version)
        releases.append(train_and_evaluate(store, spec, progress, f"v{version}", eval_run))
    return finish_run(store, "wsd_s", setup, releases, started)


def run_infinite(
    setup: CompareSetup,
    config: ProjectConfig,
    progress_bar: bool = False,
    progress: ProgressFactory | None = None,
) -> ParadigmRun:
    """Warm-up, cool-down to η_const and a plateau on the main path; each release anneals from the
    plateau checkpoint at its fork; the main path goes on from the plateau, never from an anneal."""
    started = time.perf_counter()
    store = mirrored_store(
        setup,
        layout.compare_infinite(
            setup.alpha, setup.settings.infinite_plateau_ratio, setup.settings.infinite_cooldown
        ),
    )
    runs = setup_lr_paths(setup, config)["infinite"]
    mains = [r for r in runs if r[0] == "main"]
    anneals = [r for r in runs if r[0] == "anneal"]
    releases = []
    for plan, main, anneal in zip(setup.plans, mains, anneals, strict=True):
        v, (_, _, main_lr, start, end), (_, _, anneal_lr, fork, _) = plan.version, main, anneal
        init = layout.main_checkpoint(start) if start > 0 else None
        main_spec = plain_spec(
            store, config, layout.MAIN_RUN, init, start, end, main_lr, v, progress_bar,
            save_at=list(plan.retained_steps),
        )  # fmt: skip
        train_segment(store, main_spec, progress, f"main-v{v}")
        run = layout.branch_run(v, setup.decay, setup.alpha)
        spec = plain_spec(
            store, config, run, layout.main_checkpoint(fork), fork, end, anneal_lr, v, progress_bar
        )
        train_segment(store, spec, progress, f"anneal-v{v}")
        checkpoint = layout.checkpoint(run, end)
        ppl = evaluate_release(store, run, checkpoint, list(range(1, v + 1)))
        steps = logged_steps(store, layout.MAIN_RUN, start, end) + logged_steps(store, run, fork, end)
        releases.append(make_release(store, checkpoint, v, steps, ppl))
    return finish_run(store, "infinite", setup, releases, started, layout.run_record(setup.decay))
