"""What a comparison starts from: its configuration, the guard on its folder, and the shared data.

:func:`prepare_comparison` ingests the versions into the comparison's shared data store once and
plans them; nothing trains here. ``compare.json`` in the folder keeps the data and settings the
folder was made with, so a resume with other settings is refused instead of mixing runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel

from lrpath_core import layout
from lrpath_core.config import DecayShape, ProjectConfig, changed_fields, load_config
from lrpath_core.errors import LrpathError
from lrpath_core.ingest import ingest_data, steps_of
from lrpath_core.model_presets import PRESETS
from lrpath_core.packing import VersionManifest, load_manifest
from lrpath_core.shards import drop_sha256
from lrpath_core.storage import Store, join
from lrpath_core.timeline import VersionPlan, plan_versions

BASELINE_SHAPE: DecayShape = "cosine"
"""PTFS and CPT decay with the paper's cosine whatever the branch shape (DESIGN.md §1)."""

_DEFAULTS = ProjectConfig()
QUICK_SIZING: dict[str, object] = {
    "data.vocab_size": _DEFAULTS.data.vocab_size,
    "optimizer.seq_len": _DEFAULTS.optimizer.seq_len,
    "optimizer.batch_size": _DEFAULTS.optimizer.batch_size,
}
"""``quick``: the configuration's default (CPU demo) sizes whatever the preset; otherwise the preset's own."""

VERSION_DIR = re.compile(r"^v(\d+)$")
"""A version folder of the data being compared (``v1/``, ``v2/``, ...), not a store path."""


class CompareError(LrpathError):
    """The comparison cannot run as asked; the message says why and what to change."""


class CompareSetup(BaseModel):
    """What every paradigm run needs: where things are and the versions' plan."""

    out: str
    data: str
    sources: list[str]
    plans: list[VersionPlan]
    alpha: float
    decay: DecayShape


# the optional overrides mirror the CLI's and the flow's parameters: None keeps the config's value
def compare_config(
    out: str,
    *,
    model: str,
    quick: bool,
    alpha: float | None = None,
    decay: str | None = None,
    seed: int | None = None,
    config_path: str | None = None,
) -> ProjectConfig:
    """The comparison's configuration: ``config_path`` (if given) or the preset's sizes, then overrides.

    ``alpha``, ``decay`` and ``seed`` override the configuration only when given.
    """
    preset = PRESETS.get(model)
    if config_path or preset is None:
        sizing: dict[str, object] = {}
    elif quick:
        sizing = dict(QUICK_SIZING)
    else:
        sizing = {"data.vocab_size": preset.vocab_size, "optimizer.seq_len": preset.seq_len}
    overrides = {
        "model.preset": model,
        "paradigm.alpha": alpha,
        "paradigm.decay": decay,
        "optimizer.seed": seed,
    }
    return load_config(config_path, store=out, **sizing, **overrides)


def settings_hash(config: ProjectConfig) -> str:
    """Hash of what PTFS, CPT and the data depend on: everything but the store, α and the branch shape."""
    payload = json.dumps(_settings(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _settings(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"store", "checkpoint_every", "paradigm"})


def version_sources(data: str, versions: int | None = None) -> list[str]:
    """URLs of ``data/v1`` … ``data/vN`` (all of them, or the first ``versions``)."""
    if versions is not None and versions < 1:
        raise CompareError(f"versions must be at least 1, got {versions}")
    store = Store(data)
    found = {int(m.group(1)): name for name in store.ls("") if (m := VERSION_DIR.match(name))}
    if not found:
        raise CompareError(
            f"{store.url} holds no version folders v1/, v2/, ...: prepare them first "
            f"(e.g. `lrpath data gcide --out {data}`)"
        )
    count = versions if versions is not None else max(found)
    missing = [i for i in range(1, count + 1) if i not in found]
    if missing:
        have = ", ".join(f"v{i}" for i in sorted(found))
        raise CompareError(
            f"{store.url} has no folder v{missing[0]}/ (it has {have}); ask for fewer versions"
        )
    return [store.url_of(found[i]) for i in range(1, count + 1)]


def data_store(out: str) -> Store:
    """The shared data store of the comparison in ``out``: tokenizer (trained on v1), token cache, versions."""
    return Store(join(out, layout.COMPARE_DATA))


def prepare_comparison(
    data: str, out: str, config: ProjectConfig, versions: int | None = None
) -> CompareSetup:
    """Ingest the versions into the shared data store (once) and plan them; no training."""
    sources = version_sources(data, versions)
    root = Store(out)
    root.check_reachable()
    _check_guard(root, Store(data).url, config)
    shared = data_store(root.url)
    deltas = [
        steps_of(_ingested(shared, config, number, source), config)
        for number, source in enumerate(sources, start=1)
    ]
    warmup = config.optimizer.warmup_steps
    plans = plan_versions(deltas, config.paradigm.alpha, warmup, retain_every=config.paradigm.retain_every)
    short = [p.version for p in plans if p.delta_steps <= warmup]
    if short:
        raise CompareError(
            f"version {short[0]} fills {plans[short[0] - 1].delta_steps} steps, not more than the {warmup}-step "
            "warm-up that CPT re-runs on every version: add data or lower optimizer.warmup_steps"
        )
    return CompareSetup(
        out=root.url,
        data=Store(data).url,
        sources=sources,
        plans=plans,
        alpha=config.paradigm.alpha,
        decay=config.paradigm.decay,
    )


def _ingested(store: Store, config: ProjectConfig, number: int, source: str) -> VersionManifest:
    """Version ``number`` of the shared data store: ingested from ``source`` now, or found to be its data."""
    if not store.exists(layout.data_manifest(number)):
        return ingest_data(store, config, number, source)
    manifest = load_manifest(store, number)
    if manifest.data_sha256 != drop_sha256(source):
        raise CompareError(
            f"{source} is not the data that {store.url} ingested as version {number}; versions "
            "are immutable: use another --out"
        )
    return manifest


def _check_guard(root: Store, data: str, config: ProjectConfig) -> None:
    wanted = {"data": data, "settings_hash": settings_hash(config), "settings": _settings(config)}
    if not root.exists(layout.COMPARE_GUARD):
        root.write_json(layout.COMPARE_GUARD, wanted)
        return
    saved = root.read_json(layout.COMPARE_GUARD)
    if saved.get("data") != data:
        raise CompareError(
            f"{root.url} compares the data of {saved.get('data')}, not {data}: use another --out for other data"
        )
    if saved.get("settings_hash") != wanted["settings_hash"]:
        changed = changed_fields(saved.get("settings", {}), wanted["settings"])
        raise CompareError(
            f"{root.url} was made with other settings ({', '.join(changed[:3]) or 'unknown'}); only alpha "
            "and decay may change between runs in one folder: use another --out"
        )
