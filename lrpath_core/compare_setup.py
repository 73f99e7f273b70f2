"""What a comparison starts from: its configuration, the guard on its folder, and the shared data.

:func:`prepare_comparison` ingests the versions into one seed's shared data store once and plans
them; nothing trains here. ``compare.json`` in the seed's folder keeps the data and settings it
was made with, so a resume with other settings is refused instead of mixing runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, Field

from lrpath_core import layout
from lrpath_core.config import CompareSettings, DecayShape, ProjectConfig, changed_fields, load_config
from lrpath_core.errors import LrpathError
from lrpath_core.ingest import ingest_data, steps_of
from lrpath_core.model_presets import PRESETS
from lrpath_core.packing import VersionManifest, load_manifest
from lrpath_core.shards import drop_sha256
from lrpath_core.storage import Store, join
from lrpath_core.timeline import PARADIGMS, Paradigm, VersionPlan, plan_versions

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
    """What every paradigm run of one seed needs: where things are and the versions' plan.

    ``decay`` is every paradigm's decay shape (equal terms): PTFS's, CPT's, the branches'."""

    out: str = Field(description="the comparison folder (results.json, plots)")
    root: str = Field(description="this seed's folder in it: compare.json, data/ and the runs")
    seed: int
    settings: CompareSettings
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


def compare_settings(
    paradigms: str | list[str] | None = None,
    seeds: str | list[int] | None = None,
    **overrides: object,
) -> CompareSettings:
    """:class:`CompareSettings` from the CLI's or the flow's values: comma lists accepted, ``None``
    keeps the default, paradigm names checked (hyphens or underscores)."""
    values: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if paradigms is not None:
        values["paradigms"] = parse_paradigms(paradigms)
    if seeds is not None:
        values["seeds"] = parse_seeds(seeds)
    return CompareSettings(**values)


def parse_paradigms(names: str | list[str]) -> list[Paradigm]:
    """``ptfs,cpt-replay`` or ``["wsd_s"]`` → the paradigms in report order, each once."""
    items = names.split(",") if isinstance(names, str) else list(names)
    wanted = {item.strip().replace("-", "_") for item in items if item.strip()}
    unknown = sorted(wanted - set(PARADIGMS))
    if unknown or not wanted:
        valid = ", ".join(p.replace("_", "-") for p in PARADIGMS)
        what = f"unknown paradigm {unknown[0]!r}" if unknown else "no paradigm given"
        raise CompareError(f"{what}: choose from {valid} (hyphens or underscores)")
    return [p for p in PARADIGMS if p in wanted]  # type: ignore[misc]


def parse_seeds(seeds: str | list[int]) -> list[int]:
    """``0,1,2`` → ``[0, 1, 2]`` (each once, in the given order)."""
    try:
        items = [int(s) for s in seeds.split(",") if s.strip()] if isinstance(seeds, str) else list(seeds)
    except ValueError:
        raise CompareError(
            f"--seeds {seeds!r} is not a comma-separated list of integers, e.g. 0,1,2"
        ) from None
    if not items or any(s < 0 for s in items):
        raise CompareError(f"--seeds {seeds!r}: give one or more integers >= 0, e.g. 0,1,2")
    return list(dict.fromkeys(items))


def seeded(config: ProjectConfig, seed: int) -> ProjectConfig:
    """``config`` with ``optimizer.seed`` set: one seed's runs (init, data order, validation split)."""
    return config.model_copy(update={"optimizer": config.optimizer.model_copy(update={"seed": seed})})


def settings_hash(config: ProjectConfig) -> str:
    """Hash of what the baselines and the data depend on: everything but the store, α and the decay
    shape (the run folders are keyed by those)."""
    payload = json.dumps(_settings(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _settings(config: ProjectConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"store", "checkpoint_every", "paradigm", "compute"})


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


def data_store(root: str) -> Store:
    """The shared data store of one seed's folder ``root``: tokenizer (trained on v1), token cache, versions."""
    return Store(join(root, layout.COMPARE_DATA))


def prepare_comparison(
    data: str,
    out: str,
    config: ProjectConfig,
    versions: int | None = None,
    settings: CompareSettings | None = None,
) -> CompareSetup:
    """Ingest the versions into the seed's shared data store (once) and plan them; no training.

    The seed is ``config.optimizer.seed``; its folder is ``out/seed-{seed}``."""
    sources = version_sources(data, versions)
    top = Store(out)
    top.check_reachable()
    root = Store(join(top.url, layout.compare_seed(config.optimizer.seed)))
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
        out=top.url,
        root=root.url,
        seed=config.optimizer.seed,
        settings=settings or CompareSettings(),
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
            "and decay (and the compare settings) may change between runs in one folder: use another --out"
        )
