"""The project configuration (``lrpath.yaml``): one pydantic model, every field documented where defined."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from lrpath_core.errors import LrpathError
from lrpath_core.model_presets import PRESETS, ModelShape

DecayShape = Literal["cosine", "linear", "1-sqrt", "multi-step"]
DECAY_SHAPES: tuple[str, ...] = ("cosine", "linear", "1-sqrt", "multi-step")
DEFAULT_STORE = "./lrpath-store"


class ConfigError(LrpathError):
    """A configuration value is out of range; the message names the field and the allowed range."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptimizerConfig(_Strict):
    lr_max: float = Field(3e-3, gt=0, le=1, description="η_max: the main path's constant LR after warm-up")
    lr_min: float = Field(3e-4, ge=0, le=1, description="η_min: where every decay ends")
    warmup_steps: int = Field(20, ge=0, description="W: linear warm-up steps (main path, PTFS, CPT re-warm)")
    batch_size: int = Field(16, ge=1, description="sequences per optimizer step (global, across ranks)")
    seq_len: int = Field(128, ge=8, le=32768, description="tokens per sequence")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    weight_decay: float = Field(0.1, ge=0, le=1)
    beta1: float = Field(0.9, gt=0, lt=1)
    beta2: float = Field(0.95, gt=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables clipping")
    seed: int = Field(1234, ge=0)

    @model_validator(mode="after")
    def _lr_order(self) -> OptimizerConfig:
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min ({self.lr_min}) must be <= lr_max ({self.lr_max})")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum ({self.grad_accum})"
            )
        return self


class ParadigmConfig(_Strict):
    alpha: float = Field(0.18, gt=0, lt=1, description="decay ratio: B_i = ceil(alpha * S_i)")
    decay: DecayShape = Field("cosine", description="branch decay shape")
    retain_every: int = Field(
        50,
        ge=1,
        description="the main path keeps a checkpoint every this many steps over each version's last alpha "
        "fraction of steps, so that a later version's fork inside earlier data finds one at or just before it",
    )


class ModelConfig(_Strict):
    preset: str = Field(
        "tiny", description="tiny | small | base | large (see lrpath_core.model_presets.PRESETS)"
    )
    hidden_size: int | None = Field(None, ge=8)
    num_layers: int | None = Field(None, ge=1)
    num_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=8)

    @model_validator(mode="after")
    def _known_preset(self) -> ModelConfig:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown model preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        try:
            self.shape()
        except ValueError as exc:  # refused here so that a config that cannot build a model is never saved
            raise ValueError(f"{exc}; preset {self.preset!r} gives the sizes not set") from None
        return self

    def shape(self) -> ModelShape:
        """The plain sizes ``lrpath_core.model.llama_config`` takes: the preset's, overridden where set."""
        return PRESETS[self.preset].shape(
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
        )


class DataConfig(_Strict):
    vocab_size: int = Field(
        4096, ge=260, le=262144, description="byte-level BPE vocabulary, fixed at bootstrap"
    )
    val_fraction: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="share of each version's documents held out for validation (chosen by a hash of "
        "each document's text, before packing)",
    )
    max_shard_bytes: int = Field(
        4 << 30,
        ge=1,
        description="largest shard file ingested, in bytes (default 4 GiB); a bigger one is refused "
        "and quarantined: split it into smaller shards",
    )


class ComputeConfig(_Strict):
    """Where training segments run: device slots, processes per segment, DDP or FSDP.

    Changes no number a run produces (left out of ``training_hash``), so it may differ from one
    worker to the next. ``effective()`` applies the worker's environment (``LRPATH_NPROC``,
    ``LRPATH_DEVICES``, ``LRPATH_STRATEGY``, ``LRPATH_DEVICE_LOCKS``), which wins over the file:
    the worker knows what hardware it has.
    """

    nproc: int = Field(
        1, ge=1, description="processes (device slots) per training segment; torchrun starts them when > 1"
    )
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="how nproc > 1 processes share the model")
    devices: str | None = Field(
        None,
        description="this host's device slots, e.g. cuda:0,cuda:1 or cpu:0,cpu:1 (CPU slots split the "
        "cores); default: every CUDA device, else one CPU slot holding all cores",
    )
    lock_dir: str | None = Field(
        None, description="per-host folder of the device slots' lock files (default: <tmp>/lrpath-devices)"
    )

    def effective(self, environ: dict[str, str] | None = None) -> ComputeConfig:
        """This config with the worker's ``LRPATH_*`` environment applied."""
        import os

        env = os.environ if environ is None else environ
        names = {"nproc": "LRPATH_NPROC", "strategy": "LRPATH_STRATEGY", "devices": "LRPATH_DEVICES"}
        names["lock_dir"] = "LRPATH_DEVICE_LOCKS"
        raw = self.model_dump()
        raw.update({field: env[name] for field, name in names.items() if env.get(name, "").strip()})
        try:
            return ComputeConfig.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "compute.") + " (from LRPATH_* env)") from exc


NOT_TRAINING: dict = {"store": True, "checkpoint_every": True, "data": {"max_shard_bytes"}, "compute": True}
"""Settings that change no number a training run produces: left out of ``training_hash``."""


class ProjectConfig(_Strict):
    store: str = Field(
        DEFAULT_STORE, description="fsspec URL of the store (local path or s3://bucket/prefix)"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    paradigm: ParadigmConfig = Field(default_factory=ParadigmConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    checkpoint_every: int = Field(50, ge=1, description="resume checkpoints inside a segment, in steps")

    def training_hash(self) -> str:
        """Hash of everything that changes the numbers a training run produces (not the store, the
        checkpoint cadence, the shard size cap or where it computes)."""
        payload = self.model_dump(exclude=NOT_TRAINING)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class DemoSettings(_Strict):
    """``lrpath demo`` and ``lrpath data gcide``: how the default corpus is split and sized."""

    versions: int = Field(4, ge=1, description="data versions the corpus is split into")
    data_dir: str = Field("./lrpath-data", description="where the demo's version folders are prepared")
    quick: bool = Field(False, description="a minute-scale demo: fewer characters (or documents) per version")
    chars_per_version: int = Field(1_600_000, ge=1, description="GCIDE characters per version")
    quick_chars_per_version: int = Field(400_000, ge=1, description="GCIDE characters per version with quick")
    synthetic_docs_per_version: int = Field(6000, ge=1, description="generated documents per version")
    quick_synthetic_docs_per_version: int = Field(
        3000, ge=1, description="generated documents per version with quick"
    )

    def chars(self, quick: bool) -> int:
        return self.quick_chars_per_version if quick else self.chars_per_version

    def synthetic_docs(self, quick: bool) -> int:
        return self.quick_synthetic_docs_per_version if quick else self.synthetic_docs_per_version


class CompareSettings(_Strict):
    """``lrpath compare``: which data and sizes a comparison of paradigms uses."""

    versions: int | None = Field(None, ge=1, description="use the first N versions (default: all)")
    quick: bool = Field(
        False,
        description="CPU sizes whatever the preset: the default vocab, seq_len and batch_size "
        "(otherwise the preset's own vocab and seq_len)",
    )
    paradigms: list[str] = Field(
        default_factory=lambda: ["ptfs", "cpt", "cpt_replay", "wsd_s", "infinite", "path_switching"],
        min_length=1,
        description="paradigms to run (ptfs, cpt, cpt-replay, wsd-s, infinite, path-switching)",
    )
    seeds: list[int] | None = Field(
        None, description="run every paradigm once per seed, each in seed-{s}/ (default: optimizer.seed)"
    )
    cpt_optimizer: Literal["keep", "reset"] = Field(
        "keep",
        description="CPT (and CPT with replay) continues with the previous release's AdamW moments "
        "(keep) or starts a fresh AdamW each version (reset)",
    )
    replay_fraction: float = Field(
        0.05, ge=0, lt=1, description="cpt-replay: share of each update's blocks drawn from earlier versions"
    )
    infinite_plateau_ratio: float = Field(
        0.5, gt=0, le=1, description="infinite: the plateau η_const = max(η_min, ratio·η_max)"
    )
    infinite_cooldown: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="infinite: cool-down from η_max to η_const over this fraction of version 1's steps "
        "(ending by version 1's fork at the latest)",
    )
    study_lr_factors: list[float] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0],
        min_length=1,
        description="--study first-stage: the main path's LR as these multiples of optimizer.lr_max",
    )
    study_alphas: list[float] = Field(
        default_factory=lambda: [0.05, 0.1, 0.18, 0.3],
        min_length=1,
        description="--study second-stage: α values",
    )
    study_shapes: list[DecayShape] = Field(
        default_factory=lambda: ["cosine", "linear", "1-sqrt", "multi-step"],
        min_length=1,
        description="--study second-stage: decay shapes",
    )
    study_versions: list[int] = Field(
        default_factory=lambda: [2, 3, 4, 5, 6, 7, 8],
        min_length=1,
        description="--study versions: numbers of versions V the corpus is re-split into",
    )


def field_info(dotted: str, model: type[BaseModel] = ProjectConfig) -> FieldInfo:
    """The pydantic field behind a dotted name such as ``paradigm.alpha``: its default, description
    and constraints (the CLI builds its options from these)."""
    *parents, leaf = dotted.split(".")
    for name in parents:
        annotation = model.model_fields[name].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise KeyError(f"{dotted}: {name} is not a section")
        model = annotation
    return model.model_fields[leaf]


def changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``field.path: old -> new`` for every field that differs between two dumped configs."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}: {a} -> {b}")
    return keys


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}{loc}: {msg}")
    return "; ".join(lines)


def load_config(path: str | Path | None = None, **overrides: object) -> ProjectConfig:
    """Load ``lrpath.yaml`` (when given and present) and apply dotted overrides like ``optimizer.lr_max``."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


class ServerSettings(_Strict):
    """``lrpath server up``: the local Prefect server, its database and workers."""

    port: int = Field(4200, ge=1, le=65535, description="port of the Prefect API and UI on 127.0.0.1")
    workers: int = Field(1, ge=1, description="workers on the lrpath-gpu pool (one run each; the gpu limit)")
    db: str = Field(
        "sqlite", description="sqlite (under home) or a postgresql://user:password@host:port/db URL"
    )
    home: str = Field(".prefect", description="PREFECT_HOME: the SQLite database, logs and the pid file")
    heartbeat_s: int = Field(
        30,
        ge=30,
        description="PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers' flow runs (Prefect's minimum: 30)",
    )
    worker_query_s: float = Field(
        0.5,
        gt=0,
        description="PREFECT_WORKER_QUERY_SECONDS of the workers: how often each asks the server for runs "
        "to start (Prefect's default, 10 s, would add up to 13 s between a drop's event and its run)",
    )
    zombie_after_beats: int = Field(
        3, ge=2, description="a Running flow run that missed this many heartbeats is set Crashed"
    )
    gpu_lease_s: float = Field(
        60,
        ge=60,
        description="lease of a held gpu-limit slot, renewed while training: a dead run's slot comes back "
        "after this long (Prefect's minimum: 60)",
    )
    gpu_busy_retry_delays_s: list[float] = Field(
        default_factory=lambda: [0.05, 0.1, 0.2, 0.4, 0.8, 1.6],
        description="waits before taking a gpu-limit slot again after a 503 (a SQLite server's "
        "database was locked), before Prefect's client's own 2 s retries",
    )
    busy_retries: int = Field(
        4,
        ge=0,
        description="tries again after a 503 from the server's REST API (a SQLite server answers 503 while "
        "its database is locked), waiting 1, 2, 3 … s",
    )
