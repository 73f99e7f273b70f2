"""``timeline.json`` and ``config.json`` in a store: read, update atomically, and the saved settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lrpath_core import layout
from lrpath_core.config import NOT_TRAINING, ConfigError, ProjectConfig, changed_fields
from lrpath_core.storage import StaleStateError, Store
from lrpath_core.timeline import Timeline, TimelineError
from lrpath_core.tokenizer import TokenizerError, load_tokenizer, tokenizer_sha256

UPDATE_ATTEMPTS = 8


def load_timeline(store: Store) -> tuple[Timeline | None, int]:
    raw, generation = store.read_json_generation(layout.TIMELINE)
    return (Timeline.model_validate(raw) if raw is not None else None), generation


def update_timeline(store: Store, change: Callable[[Timeline | None], Timeline]) -> Timeline:
    """Read-modify-write ``timeline.json``: under the store lock locally, optimistic on object stores.

    A writer that lost a race (another task wrote in between) re-reads and re-applies ``change``,
    so concurrent tasks (a branch and the main tail) never lose each other's updates.
    """
    for attempt in range(UPDATE_ATTEMPTS):
        with store.lock(layout.TIMELINE):
            current, generation = load_timeline(store)
            updated = change(current.model_copy(deep=True) if current else None)
            state = updated.model_dump(mode="json", exclude={"generation"})
            try:
                store.write_json_checked(layout.TIMELINE, state, generation)
            except StaleStateError:
                if attempt == UPDATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            return updated.model_copy(update={"generation": generation + 1})
    raise AssertionError("unreachable")


def require_timeline(store: Store) -> Timeline:
    timeline, _ = load_timeline(store)
    if timeline is None:
        raise TimelineError(f"no timeline in {store.url}: ingest a first version (lrpath ingest PATH --now)")
    return timeline


def store_config(store: Store, given: ProjectConfig | None = None) -> ProjectConfig:
    """The configuration a store's timeline was started with (saved when the store was opened first).

    Later runs (a deployment triggered by an event, a re-run) read it from the store, so every
    version of a timeline trains with the same settings. A ``given`` config (``--config``) starts
    a new store; on an existing store its training settings must match the saved ones, else the
    differing fields are named. Its run-time settings (``compute``, ``checkpoint_every``,
    ``data.max_shard_bytes``: :data:`NOT_TRAINING`) are this run's and win over the saved ones.
    """
    if not store.exists(layout.CONFIG):
        return (given or ProjectConfig()).model_copy(update={"store": store.url})
    saved = ProjectConfig.model_validate(store.read_json(layout.CONFIG)).model_copy(
        update={"store": store.url}
    )
    if given is not None and given.training_hash() != saved.training_hash():
        ignore = NOT_TRAINING
        changed = changed_fields(
            saved.model_dump(mode="json", exclude=ignore), given.model_dump(mode="json", exclude=ignore)
        )
        raise ConfigError(
            f"{store.url_of(layout.CONFIG)} was started with other settings ({'; '.join(changed)}): a timeline keeps "
            "its configuration; drop --config, or use a new store for the new settings"
        )
    # equal training hashes: the given config differs from the saved one in NOT_TRAINING fields only
    return saved if given is None else given.model_copy(update={"store": store.url})


def save_config(store: Store, config: ProjectConfig) -> None:
    if not store.exists(layout.CONFIG):
        store.write_json(layout.CONFIG, config.model_dump(mode="json"))


def load_project_tokenizer(store: Store) -> Any:
    """The store's tokenizer, checked against the hash its timeline recorded when it was trained."""
    tokenizer = load_tokenizer(store, layout.TOKENIZER)
    timeline, _ = load_timeline(store)
    if timeline is not None and timeline.tokenizer and tokenizer_sha256(tokenizer) != timeline.tokenizer:
        raise TokenizerError(
            f"the tokenizer in {store.url_of(layout.TOKENIZER)} is not the one this timeline was trained with "
            f"(sha256 {tokenizer_sha256(tokenizer)[:16]}…, timeline.json says {timeline.tokenizer[:16]}…): "
            "restore the original tokenizer/ folder"
        )
    return tokenizer


def unreleased_versions(timeline: Timeline) -> list[int]:
    return [v.version for v in timeline.versions if not v.releases]
