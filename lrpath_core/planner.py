"""The cost planner behind ``lrpath plan``: versions, paradigm costs, LR rows, a readable table."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from lrpath_core.config import DecayShape, ProjectConfig
from lrpath_core.model_presets import CHECKPOINT_BYTES_PER_PARAMETER, PRESETS, parameter_count
from lrpath_core.timeline import (
    Paradigm,
    ParadigmCost,
    PlanError,
    VersionPlan,
    branch_length,
    lr_paths,
    lr_rows,
    paradigm_costs,
    plan_versions,
    retained_checkpoints,
)

FINAL_TAIL_NOTE = (
    "path switching's relative cost counts the last version's main tail (its fork to S_V), which no "
    "release uses until a next version arrives; 'without final tail' leaves it out"
)


class PlanRequest(BaseModel):
    """What a plan needs; the values a timeline would use come from ``ProjectConfig``."""

    delta_steps: list[int]
    alpha: float
    warmup_steps: int
    decay: DecayShape
    lr_max: float
    lr_min: float
    retain_every: int
    model_preset: str
    vocab_size: int

    @classmethod
    def from_config(cls, delta_steps: list[int], config: ProjectConfig) -> PlanRequest:
        o = config.optimizer
        return cls(
            delta_steps=delta_steps,
            alpha=config.paradigm.alpha,
            warmup_steps=o.warmup_steps,
            decay=config.paradigm.decay,
            retain_every=config.paradigm.retain_every,
            model_preset=config.model.preset,
            vocab_size=config.data.vocab_size,
            lr_max=o.lr_max,
            lr_min=o.lr_min,
        )


class PlanReport(BaseModel):
    request: PlanRequest
    versions: list[VersionPlan]
    paradigms: dict[Paradigm, ParadigmCost]

    def to_json_dict(self) -> dict:
        """``relative_cost`` counts every step path switching runs; ``…_without_final_tail`` leaves out
        the last version's main tail (fork to ``S_V``), which no release uses until a next version."""
        ps = self.paradigms["path_switching"]
        return {
            "versions": [v.model_dump() for v in self.versions],
            "paradigms": {k: v.model_dump() for k, v in self.paradigms.items()},
            "alpha": self.request.alpha,
            "decay": self.request.decay,
            "warmup_steps": self.request.warmup_steps,
            "lr_max": self.request.lr_max,
            "lr_min": self.request.lr_min,
            "retain_every": self.request.retain_every,
            "retained_checkpoints": retained_checkpoints(self.versions),
            "retained_checkpoint_bytes": self.retained_bytes(),
            "relative_cost": ps.relative_cost,
            "relative_cost_without_final_tail": ps.relative_cost_without_final_tail,
        }

    def retained_bytes(self) -> int:
        """Storage of the kept main-path checkpoints for the request's model preset and vocabulary."""
        shape = PRESETS[self.request.model_preset].shape()
        each = parameter_count(shape, self.request.vocab_size) * CHECKPOINT_BYTES_PER_PARAMETER
        return each * len(retained_checkpoints(self.versions))

    def table(self) -> str:
        lines = [
            f"alpha={self.request.alpha}  decay={self.request.decay}  warmup={self.request.warmup_steps}  "
            f"lr_max={self.request.lr_max:g}  lr_min={self.request.lr_min:g}",
            "",
            f"{'version':>7}  {'ΔT_i':>8}  {'S_i':>8}  {'⌈α·S_i⌉':>7}  {'B_i':>7}  {'fork step':>9}",
        ]
        for v in self.versions:
            wanted = branch_length(self.request.alpha, v.cumulative_steps)
            note = (
                "  (fork inside earlier data: a retained checkpoint)"
                if v.fork_step < v.previous_cumulative_steps
                else ""
            )
            lines.append(
                f"{v.version:>7}  {v.delta_steps:>8}  {v.cumulative_steps:>8}  {wanted:>7}  {v.branch_steps:>7}  "
                f"{v.fork_step:>9}{note}"
            )
        kept = retained_checkpoints(self.versions)
        lines += [
            "",
            f"main-path checkpoints kept after the last version: {len(kept)}, "
            f"{self.retained_bytes() / 2**30:.2f} GiB for model {self.request.model_preset} "
            f"(steps {', '.join(map(str, kept))})",
        ]
        lines += [
            "",
            f"{'paradigm':<15}  {'total steps':>11}  {'relative cost':>13}  {'without final tail':>18}",
        ]
        for name, cost in self.paradigms.items():
            without = cost.relative_cost_without_final_tail
            cell = (
                f"{without:.4f} ({cost.total_steps_without_final_tail} steps)" if without is not None else "-"
            )
            lines.append(f"{name:<15}  {cost.total_steps:>11}  {cost.relative_cost:>13.4f}  {cell:>18}")
        lines += ["", FINAL_TAIL_NOTE]
        return "\n".join(lines)

    def lr_paths(self):
        r = self.request
        return lr_paths(self.versions, r.lr_max, r.lr_min, r.warmup_steps, r.decay)

    def write_lr_csv(self, path: str | Path) -> int:
        """Write every step's LR for every path; returns the number of rows."""
        rows = 0
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["paradigm", "path", "version", "step", "lr"])
            for paradigm, kind, version, step, lr in lr_rows(self.lr_paths()):
                writer.writerow([paradigm, kind, version, step, repr(lr)])
                rows += 1
        return rows


def make_plan(request: PlanRequest) -> PlanReport:
    if request.lr_min > request.lr_max:
        raise PlanError(f"lr_min ({request.lr_min}) must be <= lr_max ({request.lr_max})")
    versions = plan_versions(
        request.delta_steps, request.alpha, request.warmup_steps, retain_every=request.retain_every
    )
    return PlanReport(request=request, versions=versions, paradigms=paradigm_costs(versions))
