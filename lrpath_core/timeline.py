"""The version timeline: planned steps per version, cost of each paradigm, and the persisted state.

Vocabulary (DESIGN.md §1): ``delta_steps`` = ΔT_i, ``cumulative_steps`` = S_i,
``branch_steps`` = B_i = ceil(α·S_i), ``fork_step`` = S_i − B_i.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lrpath_core.config import CompareSettings, DecayShape
from lrpath_core.errors import LrpathError
from lrpath_core.schedules import LRPath

Paradigm = Literal["path_switching", "ptfs", "cpt", "cpt_replay", "wsd_s", "infinite"]
PARADIGMS: tuple[str, ...] = ("ptfs", "cpt", "cpt_replay", "wsd_s", "infinite", "path_switching")
"""Every paradigm ``lrpath compare`` runs, in report order."""


class PlanError(LrpathError):
    """A plan cannot be built from these numbers; the message says which and what to change."""


class TimelineError(LrpathError):
    """The timeline cannot take this step (or has no such version); the message says why and what to do."""


def branch_length(alpha: float, cumulative_steps: int) -> int:
    """B_i = ceil(α·S_i), rounded so that 0.18·1000 is 180 and not 181."""
    return max(1, math.ceil(round(alpha * cumulative_steps, 9)))


class VersionPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = Field(ge=1)
    delta_steps: int = Field(ge=1)
    cumulative_steps: int = Field(ge=1)
    branch_steps: int = Field(ge=1, description="the branch's actual length: S_i − fork_step ≥ ceil(α·S_i)")
    fork_step: int = Field(ge=0, description="the main-path checkpoint the branch starts from")
    fork_clamped: bool = Field(
        False,
        description="only in timelines from before retention windows: α·S_i exceeded ΔT_i and the branch "
        "was forked at S_{i-1} instead, spanning ΔT_i steps (shorter than planned)",
    )
    retained_steps: tuple[int, ...] = Field(
        (), description="main-path checkpoints this version's main segments keep for later forks"
    )

    @property
    def previous_cumulative_steps(self) -> int:
        return self.cumulative_steps - self.delta_steps


def plan_versions(
    delta_steps: list[int], alpha: float, warmup_steps: int = 0, *, retain_every: int | None
) -> list[VersionPlan]:
    """Plan the versions of a timeline from each version's new-data steps.

    The branch of version i forks at ``S_i − ceil(α·S_i)``. When that step lies inside earlier data
    (``ceil(α·S_i) > ΔT_i``: a large first version, then small updates) the main path has already
    passed it; it keeps a retention window of checkpoints every ``retain_every`` steps over each
    version's tail for exactly this case, and the branch forks at the retained checkpoint at or
    just before the step, never shorter than ``ceil(α·S_i)``. Later forks never lie before this
    version's fork (``S − ceil(α·S)`` grows with S), so a window from the fork to ``S_i`` is enough.
    ``retain_every=None`` plans a timeline from before retention windows: such a fork is clamped
    to ``S_{i−1}`` (a shorter branch), as those stores did.
    """
    if not delta_steps:
        raise PlanError("a timeline needs at least one version")
    if not 0 < alpha < 1:
        raise PlanError(f"alpha must be in (0, 1), got {alpha}")
    plans: list[VersionPlan] = []
    kept: set[int] = set()
    cumulative = 0
    for index, delta in enumerate(delta_steps, start=1):
        if delta < 1:
            raise PlanError(f"version {index} has {delta} steps; every version needs at least 1 step")
        previous, cumulative = cumulative, cumulative + delta
        nominal = cumulative - branch_length(alpha, cumulative)
        clamped = nominal < previous and retain_every is None
        candidates = [s for s in kept if s <= nominal]
        if nominal >= previous:
            fork = nominal
        elif clamped:
            fork = previous
        elif candidates:
            fork = max(candidates)
        else:
            raise PlanError(
                f"version {index}'s branch of ceil(alpha*S) = {branch_length(alpha, cumulative)} steps would fork "
                "at step 0, before the main path's first checkpoint: use a smaller alpha or more steps for "
                "version 1"
            )
        tail_start = max(fork, previous)
        window = (
            range(_next_multiple(tail_start, retain_every), cumulative, retain_every) if retain_every else ()
        )
        retained = tuple(sorted({*([fork] if fork > previous else []), *window, cumulative}))
        kept.update(retained)
        plans.append(
            VersionPlan(
                version=index,
                delta_steps=delta,
                cumulative_steps=cumulative,
                branch_steps=cumulative - fork,
                fork_step=fork,
                fork_clamped=clamped,
                retained_steps=retained,
            )
        )
    first = plans[0]
    if first.fork_step < warmup_steps:
        raise PlanError(
            f"version 1 forks at step {first.fork_step}, inside the {warmup_steps}-step warm-up: the branch "
            "would not start at lr_max; use fewer warm-up steps, a smaller alpha or more steps for version 1"
        )
    return plans


def retained_checkpoints(versions: list[VersionPlan]) -> list[int]:
    """Main-path checkpoints a store keeps after the last version: every fork and version end (for
    re-runs and lineage) and the last retention window, from the newest kept step at or before the
    last fork (later forks never lie before it)."""
    forks_and_ends = {s for v in versions for s in (v.fork_step, v.cumulative_steps)}
    window = {s for v in versions for s in v.retained_steps}
    anchor = max((s for s in window | forks_and_ends if s <= versions[-1].fork_step), default=0)
    return sorted(forks_and_ends | {s for s in window if s >= anchor})


def _next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step``."""
    return (step // every + 1) * every


class ParadigmCost(BaseModel):
    total_steps: int
    relative_cost: float
    total_steps_without_final_tail: int | None = Field(
        None, description="path switching: without the last version's main tail, which no release uses"
    )
    relative_cost_without_final_tail: float | None = None


def paradigm_steps(plans: list[VersionPlan]) -> dict[Paradigm, int]:
    """Optimizer steps each paradigm runs for all planned versions (DESIGN.md §1, docs/method.md).

    CPT, CPT with replay (replay takes the place of new blocks) and WSD-S (one trajectory whose
    decays lie inside each version's steps) run ``S_V``; the infinite schedule is path switching's
    structure (one main path, an anneal per release), so it costs the same."""
    last = plans[-1].cumulative_steps
    branched = last + sum(p.branch_steps for p in plans)
    return {
        "ptfs": sum(p.cumulative_steps for p in plans),
        "cpt": last,
        "cpt_replay": last,
        "wsd_s": last,
        "infinite": branched,
        "path_switching": branched,
    }


BRANCHED: tuple[Paradigm, ...] = ("infinite", "path_switching")
"""Paradigms with a main path whose last tail (fork → S_V) no release uses."""


def paradigm_costs(plans: list[VersionPlan]) -> dict[Paradigm, ParadigmCost]:
    steps = paradigm_steps(plans)
    ptfs = steps["ptfs"]
    costs = {name: ParadigmCost(total_steps=n, relative_cost=n / ptfs) for name, n in steps.items()}
    tail = final_tail_steps(plans)
    for name in BRANCHED:
        without = steps[name] - tail
        costs[name] = costs[name].model_copy(
            update={
                "total_steps_without_final_tail": without,
                "relative_cost_without_final_tail": without / ptfs,
            }
        )
    return costs


def final_tail_steps(plans: list[VersionPlan]) -> int:
    """The last version's main tail (its fork → ``S_V``, within its own data): no release uses it."""
    last = plans[-1]
    return last.cumulative_steps - max(last.fork_step, last.previous_cumulative_steps)


def equal_increment_relative_cost(versions: int, alpha: float) -> float:
    """DESIGN.md's closed form for V equal versions: (V + α·V(V+1)/2) / (V(V+1)/2)."""
    triangle = versions * (versions + 1) / 2
    return (versions + alpha * triangle) / triangle


Run = tuple[str, int, LRPath, int, int]
"""One training run of a paradigm: ``(path, version, LRPath, first_step, end_step)``."""


def baseline_lr_path(
    kind: Literal["ptfs", "cpt"],
    lr_max: float,
    lr_min: float,
    warmup_steps: int,
    start: int,
    length: int,
    shape: DecayShape,
) -> LRPath:
    """PTFS (from step 0 over ``S_i``) or CPT (re-warm at ``S_{i-1}`` over ``ΔT_i``): warm-up, full decay."""
    rates = {"lr_max": lr_max, "lr_min": lr_min, "warmup_steps": warmup_steps}
    return LRPath(kind=kind, start_step=start, length=length, shape=shape, **rates)


def wsd_s_decay_steps(plan: VersionPlan, warmup_steps: int) -> int:
    """WSD-S's decay inside version i: ``ceil(α·S_i)`` steps (the branch length), but no more than
    the version's own steps after its (re-)warm-up: the one trajectory never goes back."""
    return max(1, min(plan.branch_steps, plan.delta_steps - warmup_steps))


def infinite_main_path(
    plans: list[VersionPlan],
    lr_max: float,
    lr_min: float,
    warmup_steps: int,
    plateau_ratio: float,
    cooldown_fraction: float,
) -> LRPath:
    """The infinite schedule's main path: warm-up, a cool-down over ``ceil(cooldown_fraction·S_1)``
    steps (ending by version 1's fork, so every anneal starts on the plateau), then
    η_const = max(η_min, ``plateau_ratio``·η_max)."""
    first = plans[0]
    cooldown = min(
        math.ceil(round(cooldown_fraction * first.cumulative_steps, 9)), first.fork_step - warmup_steps
    )
    return LRPath(
        kind="infinite",
        lr_max=lr_max,
        lr_min=lr_min,
        warmup_steps=warmup_steps,
        plateau_lr=max(lr_min, plateau_ratio * lr_max),
        cooldown_steps=max(0, cooldown),
    )


def lr_paths(
    plans: list[VersionPlan],
    lr_max: float,
    lr_min: float,
    warmup_steps: int,
    shape: DecayShape = "cosine",
    *,
    plateau_ratio: float | None = None,
    cooldown_fraction: float | None = None,
) -> dict[Paradigm, list[Run]]:
    """Every training run of every paradigm, each decay in ``shape`` (a comparison's equal terms).

    Steps are global (the main-path stream's step) except PTFS, whose runs each start at 0; CPT's
    (and CPT with replay's) first version is PTFS's first. The infinite schedule's plateau and
    cool-down default to :class:`lrpath_core.config.CompareSettings`'."""
    defaults = CompareSettings()
    infinite = infinite_main_path(
        plans,
        lr_max,
        lr_min,
        warmup_steps,
        defaults.infinite_plateau_ratio if plateau_ratio is None else plateau_ratio,
        defaults.infinite_cooldown if cooldown_fraction is None else cooldown_fraction,
    )
    plateau = infinite.plateau_lr or lr_min
    rates = {"lr_max": lr_max, "lr_min": lr_min}
    main = LRPath(kind="main", warmup_steps=warmup_steps, **rates)
    paths: dict[Paradigm, list[Run]] = {name: [] for name in PARADIGMS}  # type: ignore[misc]
    for p in plans:
        v, start, end = p.version, p.previous_cumulative_steps, p.cumulative_steps
        fork, length = p.fork_step, p.branch_steps
        branch = LRPath(kind="branch", start_step=fork, length=length, shape=shape, **rates)
        paths["path_switching"] += [("main", v, main, start, end), ("branch", v, branch, fork, end)]
        anneal = LRPath(
            kind="branch", lr_max=plateau, lr_min=lr_min, start_step=fork, length=length, shape=shape
        )
        paths["infinite"] += [("main", v, infinite, start, end), ("anneal", v, anneal, fork, end)]
        ptfs = baseline_lr_path("ptfs", lr_max, lr_min, warmup_steps, 0, end, shape)
        paths["ptfs"].append(("train", v, ptfs, 0, end))
        cpt = (
            ptfs
            if v == 1
            else baseline_lr_path("cpt", lr_max, lr_min, warmup_steps, start, p.delta_steps, shape)
        )
        paths["cpt"].append(("train", v, cpt, start, end))
        paths["cpt_replay"].append(("train", v, cpt, start, end))
        wsd = LRPath(
            kind="wsd_s",
            start_step=start,
            length=p.delta_steps,
            warmup_steps=warmup_steps,
            decay_steps=wsd_s_decay_steps(p, warmup_steps),
            shape=shape,
            **rates,
        )
        paths["wsd_s"].append(("train", v, wsd, start, end))
    return paths


def lr_rows(paths: dict[Paradigm, list[Run]]):
    """``(paradigm, path, version, step, lr)`` for every step every paradigm runs."""
    for paradigm, runs in paths.items():
        for path, version, lr_path, first, end in runs:
            for step in range(first, end):
                yield paradigm, path, version, step, lr_path.lr(step)


VersionStatus = Literal["planned", "ingested", "main_to_fork", "forked", "released"]


class CheckpointRef(BaseModel):
    url: str
    step: int
    sha256: str | None = Field(None, description="sha256 of the checkpoint's manifest.json")


class Release(BaseModel):
    revision: int = Field(ge=1)
    url: str
    decay: DecayShape
    alpha: float
    fork_step: int
    branch_steps: int
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: str


class VersionRecord(BaseModel):
    """What the store knows of one version; updated as the version moves through the DAG."""

    version: int = Field(ge=1)
    name: str
    data_manifest: str | None = None
    data_sha256: str | None = None
    delta_steps: int = Field(ge=1)
    cumulative_steps: int = Field(ge=1)
    branch_steps: int = Field(ge=1)
    fork_step: int = Field(ge=0)
    fork_clamped: bool = False
    retained_steps: tuple[int, ...] = ()
    status: VersionStatus = "ingested"
    fork_checkpoint: CheckpointRef | None = None
    version_end_checkpoint: CheckpointRef | None = None
    branch_checkpoint: CheckpointRef | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    releases: list[Release] = Field(default_factory=list)

    @property
    def previous_cumulative_steps(self) -> int:
        return self.cumulative_steps - self.delta_steps

    def plan(self) -> VersionPlan:
        return VersionPlan(**self.model_dump(include=set(VersionPlan.model_fields)))


class StepsRun(BaseModel):
    main: int = 0
    branch: int = 0


class Timeline(BaseModel):
    """``timeline.json``: the store's single source of truth for a path-switching timeline."""

    generation: int = 0
    config_hash: str
    alpha: float
    decay: DecayShape
    retain_every: int | None = Field(
        None, description="main-path retention cadence; None: a timeline from before retention windows"
    )
    tokenizer: str | None = None
    versions: list[VersionRecord] = Field(default_factory=list)
    steps_run: StepsRun = Field(default_factory=StepsRun)
    segments: dict[str, int] = Field(
        default_factory=dict, description="steps of every finished training segment, keyed path:run:start-end"
    )

    def plans(self) -> list[VersionPlan]:
        return [v.plan() for v in self.versions]

    def version(self, number: int) -> VersionRecord:
        for record in self.versions:
            if record.version == number:
                return record
        known = ", ".join(str(v.version) for v in self.versions) or "none"
        raise TimelineError(f"version {number} is not in the timeline (versions: {known})")

    def costs(self) -> dict[Paradigm, ParadigmCost]:
        return paradigm_costs(self.plans()) if self.versions else {}
