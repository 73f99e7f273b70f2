"""Every learning-rate path as a pure function of the optimizer step.

Steps are 0-based: ``lr(t)`` is the LR used by optimizer step ``t``. A warm-up of ``W`` steps
uses ``η_max·(t+1)/W`` so that step ``W-1`` already trains at ``η_max`` and nothing is wasted
on an LR of zero. A decay over ``n`` steps starts at ``η_max`` on its first step and uses
``η_min`` on its last.

Only the step is state: a checkpoint stores the step, never a schedule object; a branch is
"main checkpoint + another :class:`LRPath`".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lrpath_core.config import DecayShape

MULTI_STEP_LEVELS = (0.316, 0.1)
"""DeepSeek's steps after its constant stage: ~31.6%, then 10% of η_max, each for half of the decay
(the first ``length // 2`` steps, then the rest), floored at η_min; no step at η_max."""


def warmup_lr(step: int, lr_max: float, warmup_steps: int, lr_start: float = 0.0) -> float:
    """Linear warm-up from ``lr_start`` towards ``lr_max``; ``lr_max`` from step ``warmup_steps - 1`` on."""
    if step >= warmup_steps:
        return lr_max
    return lr_start + (lr_max - lr_start) * (step + 1) / warmup_steps


def decay_progress(k: int, length: int) -> float:
    """Where step ``k`` of an ``length``-step decay stands, 0.0 (first step) to 1.0 (last step)."""
    if length <= 1:
        return 1.0
    return min(max(k / (length - 1), 0.0), 1.0)


def decay_lr(k: int, length: int, lr_max: float, lr_min: float, shape: DecayShape = "cosine") -> float:
    """LR of step ``k`` (0-based) of a decay from ``lr_max`` to ``lr_min`` over ``length`` steps.

    ``multi-step`` is the exception to "first step η_max, last step η_min": its two levels are
    relative to ``lr_max`` (see :data:`MULTI_STEP_LEVELS`)."""
    p = decay_progress(k, length)
    span = lr_max - lr_min
    if shape == "cosine":
        value = lr_min + span * 0.5 * (1.0 + math.cos(math.pi * p))
    elif shape == "linear":
        value = lr_max - span * p
    elif shape == "1-sqrt":
        value = lr_min + span * (1.0 - math.sqrt(p))
    elif shape == "multi-step":
        level = MULTI_STEP_LEVELS[0] if k < length // 2 else MULTI_STEP_LEVELS[1]
        return max(lr_min, lr_max * level)
    else:
        raise ValueError(f"unknown decay shape {shape!r}; choose one of cosine, linear, 1-sqrt, multi-step")
    if p >= 1.0:
        return lr_min
    if p <= 0.0:
        return lr_max
    return min(max(value, lr_min), lr_max)


def main_lr(step: int, lr_max: float, warmup_steps: int) -> float:
    """The main path: linear warm-up, then constant η_max forever."""
    return warmup_lr(step, lr_max, warmup_steps)


def branch_lr(
    step: int, fork_step: int, branch_steps: int, lr_max: float, lr_min: float, shape: DecayShape = "cosine"
) -> float:
    """A branch: from the main path's checkpoint at ``fork_step``, decay over ``branch_steps`` steps."""
    return decay_lr(step - fork_step, branch_steps, lr_max, lr_min, shape)


def ptfs_lr(
    step: int, total_steps: int, lr_max: float, lr_min: float, warmup_steps: int, shape: DecayShape = "cosine"
) -> float:
    """Pre-training from scratch: warm-up ``W``, then decay to η_min over the rest of ``total_steps``."""
    if step < warmup_steps:
        return warmup_lr(step, lr_max, warmup_steps)
    return decay_lr(step - warmup_steps, total_steps - warmup_steps, lr_max, lr_min, shape)


def cpt_lr(
    step: int,
    start_step: int,
    delta_steps: int,
    lr_max: float,
    lr_min: float,
    warmup_steps: int,
    shape: DecayShape = "cosine",
) -> float:
    """Continual pre-training of version i>1: re-warm η_min→η_max over W, decay to η_min, ``delta_steps`` in all."""
    k = step - start_step
    if k < warmup_steps:
        return warmup_lr(k, lr_max, warmup_steps, lr_start=lr_min)
    return decay_lr(k - warmup_steps, delta_steps - warmup_steps, lr_max, lr_min, shape)


def wsd_s_lr(
    step: int,
    start_step: int,
    length: int,
    lr_max: float,
    lr_min: float,
    warmup_steps: int,
    decay_steps: int,
    shape: DecayShape = "cosine",
) -> float:
    """One version of the WSD-S trajectory: (re-)warm-up, η_max, then a decay over its last
    ``decay_steps`` steps. Version 1 (``start_step`` 0) warms up from 0, later ones re-warm from
    η_min (they continue from the decayed checkpoint)."""
    k = step - start_step
    if k < warmup_steps:
        return warmup_lr(k, lr_max, warmup_steps, lr_start=lr_min if start_step > 0 else 0.0)
    stable_end = length - decay_steps
    if k < stable_end:
        return lr_max
    return decay_lr(k - stable_end, decay_steps, lr_max, lr_min, shape)


def infinite_lr(step: int, lr_max: float, plateau_lr: float, warmup_steps: int, cooldown_steps: int) -> float:
    """The infinite schedule's main path (Ibrahim et al. 2024): warm-up, a cosine cool-down from
    η_max to ``plateau_lr`` over ``cooldown_steps``, then constant ``plateau_lr`` forever."""
    if step < warmup_steps:
        return warmup_lr(step, lr_max, warmup_steps)
    k = step - warmup_steps
    if k < cooldown_steps:
        return decay_lr(k, cooldown_steps, lr_max, plateau_lr, "cosine")
    return plateau_lr


PathKind = Literal["main", "branch", "ptfs", "cpt", "wsd_s", "infinite"]


class LRPath(BaseModel):
    """A serializable LR path: what a training segment, a checkpoint's lineage and a plot share.

    ``start_step`` is the global step at which the path's own step 0 sits (the fork step of a
    branch, ``S_{i-1}`` for CPT, 0 for the main path and PTFS); ``length`` is its number of
    steps (``B_i``, ``ΔT_i`` or ``S_i``; unused by the main path).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: PathKind
    lr_max: float = Field(gt=0)
    lr_min: float = Field(ge=0)
    warmup_steps: int = Field(0, ge=0)
    start_step: int = Field(0, ge=0)
    length: int | None = Field(None, ge=1)
    shape: DecayShape = "cosine"
    decay_steps: int | None = Field(None, ge=1, description="wsd_s: the decay at the end of the version")
    plateau_lr: float | None = Field(
        None, ge=0, description="infinite: η_const, the plateau after the cool-down"
    )
    cooldown_steps: int = Field(0, ge=0, description="infinite: steps from η_max down to the plateau")

    @model_validator(mode="after")
    def _needed_fields(self) -> LRPath:
        if self.kind == "wsd_s" and (self.decay_steps is None or self.length is None):
            raise ValueError("a wsd_s path needs length and decay_steps")
        if self.kind == "infinite" and self.plateau_lr is None:
            raise ValueError("an infinite path needs plateau_lr")
        return self

    def lr(self, step: int) -> float:
        if self.kind == "main":
            return main_lr(step, self.lr_max, self.warmup_steps)
        if self.kind == "infinite":
            assert self.plateau_lr is not None
            return infinite_lr(step, self.lr_max, self.plateau_lr, self.warmup_steps, self.cooldown_steps)
        assert self.length is not None, f"a {self.kind} path needs a length"
        if self.kind == "wsd_s":
            assert self.decay_steps is not None
            return wsd_s_lr(
                step,
                self.start_step,
                self.length,
                self.lr_max,
                self.lr_min,
                self.warmup_steps,
                self.decay_steps,
                self.shape,
            )
        if self.kind == "branch":
            return branch_lr(step, self.start_step, self.length, self.lr_max, self.lr_min, self.shape)
        if self.kind == "ptfs":
            return ptfs_lr(
                step - self.start_step, self.length, self.lr_max, self.lr_min, self.warmup_steps, self.shape
            )
        return cpt_lr(
            step, self.start_step, self.length, self.lr_max, self.lr_min, self.warmup_steps, self.shape
        )

    def __call__(self, step: int) -> float:
        return self.lr(step)


def lr_scheduler(optimizer, lr_fn: Callable[[int], float], start_step: int):
    """A torch ``LambdaLR`` that sets the optimizer's LR to ``lr_fn(global_step)`` at every step.

    The optimizer's base LR is set to 1.0 so the lambda's value is the absolute LR. Construct it
    after loading optimizer state; it is never checkpointed (the global step is).
    """
    from torch.optim.lr_scheduler import LambdaLR

    for group in optimizer.param_groups:
        group["lr"] = 1.0
        group["initial_lr"] = 1.0
    return LambdaLR(optimizer, lr_lambda=lambda local: lr_fn(start_step + local))
