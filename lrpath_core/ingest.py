"""Ingest: a data drop becomes the timeline's next version (validated, tokenized, packed, planned).

Each shard of a drop is read once (:func:`read_drop`), its documents spooled to a local temporary
file; from there they train the tokenizer (version 1's training documents only) and are packed,
so no shard is held in memory. The first version also fixes the project's tokenizer and saves the
configuration. A drop with a bad file is held as a whole: bad files of a drop in ``incoming/``
move to ``quarantine/`` with a reason, and nothing is added to the timeline.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from lrpath_core import layout
from lrpath_core.config import DataConfig, ProjectConfig
from lrpath_core.incoming import hold, incoming_name
from lrpath_core.packing import SPLIT_FORMAT, VersionManifest, load_manifest, pack_version, training_documents
from lrpath_core.shards import Shard, ShardError, data_sha256, list_shard_sizes, read_shard
from lrpath_core.storage import Store
from lrpath_core.timeline import Timeline, TimelineError, VersionRecord, plan_versions
from lrpath_core.timeline_store import load_project_tokenizer, load_timeline, save_config, update_timeline
from lrpath_core.tokenizer import save_tokenizer, train_tokenizer

log = logging.getLogger(__name__)


class DropRejected(ShardError):
    """A data drop has bad files; the version is held and the timeline unchanged."""


def read_drop(store: Store, source_url: str, name: str, max_shard_bytes: int | None = None) -> list[Shard]:
    """Every shard of a drop, read once; any bad file holds the whole drop.

    All shards are read so that the message lists every problem. Bad files of a drop in the
    store's ``incoming/`` are moved to ``quarantine/`` with a reason. ``max_shard_bytes``
    defaults to ``data.max_shard_bytes``'s default. The caller closes the shards (their spooled
    documents) when it is done with them.
    """
    limit = DataConfig().max_shard_bytes if max_shard_bytes is None else max_shard_bytes
    problems: list[tuple[str, str]] = []
    shards: list[Shard] = []
    try:
        listed = list_shard_sizes(source_url, store.storage_options)
    except ShardError as exc:
        listed, problems = [], [(source_url, str(exc))]
    for url, size in listed:
        try:
            shards.append(read_shard(url, store.storage_options, max_bytes=limit, size=size))
        except ShardError as exc:
            problems.append((url, str(exc)))
        except BaseException:
            _close(shards)
            raise
    if not problems:
        return _unique(shards)
    _close(shards)
    where = ""
    if incoming_name(store, source_url) == name and listed:
        where = f"; bad files moved to {hold(store, name, problems)} with a reason each"
    elif incoming_name(store, source_url) == name:
        hold(store, name, [])
    detail = "; ".join(p for _, p in problems)
    raise DropRejected(
        f"data drop {name!r} is held ({len(problems)} problem(s)): {detail}{where}. Fix and re-upload the "
        f"files, or accept the {len(shards)} valid file(s) as they are: then run `lrpath release {name}`"
    )


def first_tokenizer(config: ProjectConfig, shards: list[Shard]) -> Any:
    """The project's tokenizer, trained once on version 1's *training* documents (the held-out ones,
    :func:`~lrpath_core.packing.is_validation_document`, are left out so that validation text never
    shaped the vocabulary); saved by the caller only once version 1 is accepted, so a refused first
    drop leaves no tokenizer behind."""
    return train_tokenizer(training_documents(shards, config.data.val_fraction), config.data.vocab_size)


def ingest_data(
    store: Store, config: ProjectConfig, number: int, source_url: str, name: str | None = None
) -> VersionManifest:
    """Read a drop once and write it as ``data/v{number}`` (training the tokenizer on version 1)."""
    name = name or _default_name(source_url)
    for folder in (
        layout.data_dir(number),
        layout.TOKEN_CACHE_DIR,
        layout.TOKENIZER,
    ):  # a killed ingest's files
        store.remove_temporaries(folder)
    shards = read_drop(store, source_url, name, config.data.max_shard_bytes)
    return _pack(store, config, number, source_url, name, shards)


def steps_of(manifest: VersionManifest, config: ProjectConfig) -> int:
    """ΔT_i: one pass over the version's training blocks at the configured batch size."""
    steps = manifest.train_blocks // config.optimizer.batch_size
    if steps < 1:
        raise TimelineError(
            f"version {manifest.version} has {manifest.train_blocks} training blocks, fewer than one batch of "
            f"{config.optimizer.batch_size}: add data or lower optimizer.batch_size"
        )
    return steps


def add_version(
    store: Store, config: ProjectConfig, source_url: str, name: str | None = None
) -> VersionRecord:
    """Ingest a version's shards and append it to the timeline (idempotent on identical content).

    One ingest at a time per store (a lease on every store kind), so two ingests of one name
    cannot both write ``data/vN``.
    """
    name = layout.checked_name(name or _default_name(source_url), "version name")

    def waiting(holder: str) -> None:
        log.info("another ingest into %s is running (%s): waiting", store.url, holder)

    with store.lease(layout.INGEST_LOCK, on_wait=waiting):
        return _add_version(store, config, source_url, name)


def _add_version(store: Store, config: ProjectConfig, source_url: str, name: str) -> VersionRecord:
    timeline, _ = load_timeline(store)
    shards = read_drop(store, source_url, name, config.data.max_shard_bytes)
    data_sha = data_sha256(s.sha256 for s in shards)
    if timeline is not None:
        for record in timeline.versions:
            if record.data_sha256 == data_sha:
                return record
            if record.name == name:
                raise TimelineError(
                    f"version {record.version} is already named {name!r} with other content; versions are "
                    "immutable: give the new data another name"
                )
        if timeline.config_hash != config.training_hash():
            raise TimelineError(
                f"the configuration changed since this timeline started (hash {timeline.config_hash}, now "
                f"{config.training_hash()}); use the original lrpath.yaml or a new store"
            )
    number = len(timeline.versions) + 1 if timeline else 1
    if number == 1:
        save_config(store, config)
    elif (old := load_manifest(store, 1).split_format) != SPLIT_FORMAT:
        log.warning(
            "%s: version 1 was split with split format %d (validation blocks held out after packing, "
            "tokenizer trained on its validation text too); version %d is split by document (format %d). "
            "Start a new store to evaluate every version without that leak",
            store.url,
            old,
            number,
            SPLIT_FORMAT,
        )
    manifest = _pack(store, config, number, source_url, name, shards)
    delta = steps_of(manifest, config)

    def append(current: Timeline | None) -> Timeline:
        timeline = current or Timeline(
            config_hash=config.training_hash(),
            alpha=config.paradigm.alpha,
            decay=config.paradigm.decay,
            retain_every=config.paradigm.retain_every,
            tokenizer=manifest.tokenizer_sha256,
        )
        for record in timeline.versions:
            if record.data_sha256 == manifest.data_sha256:
                return timeline
        if len(timeline.versions) + 1 != number:
            raise TimelineError(
                f"another run added version {len(timeline.versions)} meanwhile; retry the ingest"
            )
        plan = plan_versions(
            [v.delta_steps for v in timeline.versions] + [delta],
            timeline.alpha,
            config.optimizer.warmup_steps,
            retain_every=timeline.retain_every,
        )[-1]
        timeline.versions.append(
            VersionRecord(
                name=name,
                data_manifest=store.url_of(layout.data_manifest(number)),
                data_sha256=data_sha,
                status="ingested",
                **plan.model_dump(),
            )
        )
        return timeline

    return update_timeline(store, append).version(number)


def _pack(
    store: Store, config: ProjectConfig, number: int, source_url: str, name: str, shards: list[Shard]
) -> VersionManifest:
    """Pack a version; version 1 first trains the tokenizer and saves it once the version is accepted.
    The shards' spooled documents are removed afterwards."""
    try:
        new = number == 1 and not store.exists(layout.TOKENIZER_JSON)
        tokenizer = first_tokenizer(config, shards) if new else load_project_tokenizer(store)
        manifest = pack_version(
            store,
            number,
            shards,
            tokenizer,
            seq_len=config.optimizer.seq_len,
            val_fraction=config.data.val_fraction,
            seed=config.optimizer.seed,
            name=name,
            source_url=source_url,
            min_train_blocks=config.optimizer.batch_size,
        )
    finally:
        _close(shards)
    if new:
        save_tokenizer(tokenizer, store, layout.TOKENIZER)
    return manifest


def _unique(shards: list[Shard]) -> list[Shard]:
    """Shards of one drop with identical bytes and format are ingested once (and reported)."""
    kept: dict[tuple[str, str], Shard] = {}
    for shard in shards:
        key = (posixpath.splitext(shard.name)[1].lower(), shard.sha256)
        if key in kept:
            log.warning("%s has the same content as %s: ingested once", shard.url, kept[key].name)
            shard.close()
        else:
            kept[key] = shard
    return list(kept.values())


def _close(shards: list[Shard]) -> None:
    for shard in shards:
        shard.close()


def _default_name(source_url: str) -> str:
    return posixpath.basename(source_url.rstrip("/"))
