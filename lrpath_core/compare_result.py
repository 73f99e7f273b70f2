"""``results.json`` of a comparison: what each paradigm cost and how well its releases did, over seeds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lrpath_core.timeline import Paradigm


class SeedResult(BaseModel):
    """One seed's run of one paradigm."""

    seed: int
    appl: float
    appl_vs_ptfs: float | None = Field(None, description="this seed's APPL / PTFS's APPL (same seed)")
    ppl: list[float]
    ppl_per_version: list[dict[str, float]]
    steps_run: int
    store: str


class ParadigmResult(BaseModel):
    """A paradigm over every seed: means, sample standard deviations (0 for one seed), per-seed rows."""

    relative_cost: float = Field(description="optimizer steps run / PTFS's (per seed; equal for every seed)")
    relative_cost_without_final_tail: float | None = Field(
        None,
        description="path switching, infinite: without the last version's main tail, which no release uses",
    )
    steps_run: int
    appl: float = Field(description="mean over seeds of the mean PPL of the releases")
    appl_std: float
    appl_vs_ptfs: float | None = Field(None, description="mean over seeds of APPL / PTFS's APPL")
    appl_vs_ptfs_std: float | None = None
    ppl: list[float] = Field(description="mean over seeds of each release's PPL on D_1..D_i")
    ppl_std: list[float]
    ppl_per_version: list[dict[str, float]] = Field(
        description="mean over seeds, per release and data version"
    )
    seeds: list[SeedResult]


class CompareResult(BaseModel):
    """``results.json``."""

    paradigms: dict[Paradigm, ParadigmResult]
    seeds: list[int]
    settings: dict[str, Any] = Field(description="the CompareSettings the runs used")
    plan: dict[str, Any]
    config: dict[str, Any]
