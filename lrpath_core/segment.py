"""What a training segment is asked to run (:class:`SegmentSpec`) and reports (:class:`SegmentResult`),
and a version's finished branch (:class:`Branch`).

The spec travels as JSON to ``python -m lrpath_core.train`` / ``torchrun``; its sizes and
defaults come from :class:`lrpath_core.config.ProjectConfig`, so it has none of its own where
the project configuration has one. Nothing here imports torch: the flow modules import these
types, and Prefect imports a flow's module before it reports the run Running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from lrpath_core.config import DecayShape, ModelConfig, OptimizerConfig
from lrpath_core.errors import LrpathError
from lrpath_core.schedules import LRPath
from lrpath_core.timeline import CheckpointRef

if TYPE_CHECKING:
    from lrpath_core.storage import Store


class SegmentError(LrpathError):
    """A segment cannot run as specified; the message says what is inconsistent."""


class DataSpec(BaseModel):
    versions: list[int] = Field(min_length=1, description="store versions whose train blocks form the stream")
    order: Literal["within_version", "global"] = "within_version"
    batch_size: int = Field(ge=1)
    seed: int = 0


class SegmentSpec(BaseModel):
    run: str = Field(description="store-relative folder for this segment's checkpoints")
    init: str | None = Field(None, description="store-relative checkpoint to start from; None: seeded init")
    init_optimizer: bool = Field(True, description="also take the optimizer moments from `init`")
    start_step: int = Field(ge=0)
    end_step: int = Field(ge=1)
    lr_path: LRPath
    save_at: list[int] = Field(default_factory=list, description="steps-done at which checkpoints are kept")
    checkpoint_every: int = Field(
        ge=1, description="resume checkpoints every this many steps (ProjectConfig.checkpoint_every)"
    )
    data: DataSpec
    model: ModelConfig
    optimizer: OptimizerConfig
    vocab_size: int = Field(ge=2)
    config_hash: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool | None = Field(None, description="torch.compile; default on for CUDA, off for CPU")
    parallel: Literal["ddp", "fsdp"] = "ddp"
    progress_bar: bool = False

    @model_validator(mode="after")
    def _steps(self) -> SegmentSpec:
        if self.end_step <= self.start_step:
            raise ValueError(f"end_step ({self.end_step}) must be after start_step ({self.start_step})")
        bad = [s for s in self.save_at if not self.start_step < s <= self.end_step]
        if bad:
            raise ValueError(f"save_at steps {bad} are outside ({self.start_step}, {self.end_step}]")
        return self


class SegmentResult(BaseModel):
    run: str
    start_step: int
    end_step: int
    resumed_from: int | None = None
    steps_run: int
    checkpoints: dict[int, CheckpointRef]
    losses: list[tuple[int, float, float]] = Field(
        description="(step, loss, lr) for every step of the segment"
    )
    tokens: int
    seconds: float


ProgressFn = Callable[[int, int, float, float], None]
"""``(steps_done, end_step, loss, lr)`` after every optimizer step (rank 0 only)."""

SegmentRunner = Callable[["Store", SegmentSpec, "ProgressFn | None"], SegmentResult]
"""Runs one segment: :func:`lrpath_core.train.run_segment` in-process, or a task's torchrun launcher."""


class Branch(BaseModel):
    """A finished branch of one version: its end checkpoint and the decay that made it."""

    version: int
    checkpoint: CheckpointRef
    decay: DecayShape
    alpha: float
    fork_step: int
    branch_steps: int
