"""``results.json`` of a comparison: what each paradigm cost and how well its releases did."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from lrpath_core.timeline import Paradigm


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
