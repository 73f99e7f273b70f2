"""``lineage.json`` of a published revision: where the model comes from, enough to reproduce or audit it."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lrpath_core import layout
from lrpath_core.config import DecayShape
from lrpath_core.packing import load_manifest
from lrpath_core.schedules import LRPath
from lrpath_core.storage import Store

LINEAGE = "lineage.json"


class CheckpointLineage(BaseModel):
    url: str
    step: int
    manifest_sha256: str


class DataLineage(BaseModel):
    version: int
    name: str
    manifest: str
    manifest_sha256: str
    data_sha256: str
    tokens: int
    shards: int


class Lineage(BaseModel):
    """``lineage.json``: where a published model comes from, enough to reproduce or audit it."""

    version: int
    revision: int
    model_sha256: str
    fork_checkpoint: CheckpointLineage
    branch_checkpoint: CheckpointLineage
    data: list[DataLineage]
    tokenizer_sha256: str
    config_hash: str
    code_version: str
    decay: DecayShape
    alpha: float
    fork_step: int
    branch_steps: int
    cumulative_steps: int
    main_lr_path: LRPath
    branch_lr_path: LRPath
    metrics: dict[str, float]
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: str


@functools.lru_cache(maxsize=1)
def current_code_version() -> str:
    """``git describe`` of the source checkout when there is one, else the installed package version."""
    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), "describe", "--tags", "--always"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
            if out.stdout.strip():
                return f"git:{out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return f"lrpath=={importlib.metadata.version('lrpath')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def data_lineage(store: Store, version: int) -> DataLineage:
    """The data of one version as the lineage records it: its manifest, pinned by sha256."""
    rel = layout.data_manifest(version)
    raw = store.read_bytes(rel)
    manifest = load_manifest(store, version)
    return DataLineage(
        version=version,
        name=manifest.name,
        manifest=store.url_of(rel),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        data_sha256=manifest.data_sha256,
        tokens=manifest.tokens,
        shards=len(manifest.shards),
    )
