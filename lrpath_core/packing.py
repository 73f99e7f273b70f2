"""Documents → token ids → packed blocks of one version, split into train and val.

:func:`pack_version` writes (paths from :mod:`lrpath_core.layout`)::

    cache/tokens/{tokenizer_sha256[:16]}/{shard_sha256}.npy   int32 ids of one shard, EOS after each document
    data/v{N}/train.npy, data/v{N}/val.npy                     int32, shape (blocks, seq_len)
    data/v{N}/manifest.json                                    written last: its presence means complete

The token cache is keyed by content, so a shard seen before (in any version, under any name) is
not tokenized again.
"""

from __future__ import annotations

import io
import posixpath
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from lrpath_core import layout
from lrpath_core.errors import LrpathError
from lrpath_core.shards import Shard, ShardCheck, data_sha256
from lrpath_core.storage import Store, StoreError


class IngestError(LrpathError):
    """A version as a whole cannot be ingested (e.g. too little text for two blocks)."""


class ShardInfo(ShardCheck):
    documents: int
    tokens: int
    from_cache: bool = False


class VersionManifest(BaseModel):
    version: int
    name: str
    source_url: str
    shards: list[ShardInfo]
    data_sha256: str
    tokenizer_sha256: str
    seq_len: int
    train_blocks: int
    val_blocks: int
    tokens: int
    dropped_tokens: int
    val_fraction: float
    seed: int
    cache_hits: int
    created_at: str


def pack_version(
    store: Store,
    version: int,
    shards: list[Shard],
    tokenizer: Any,
    seq_len: int,
    val_fraction: float,
    seed: int,
    name: str | None,
    source_url: str,
    min_train_blocks: int = 1,
) -> VersionManifest:
    """Tokenize the shards (cached per shard), pack, split, and write ``data/v{version}``.

    Blocks are cut from the shards' ids in the given order; ``default_rng((seed, version))``
    picks the validation blocks. Nothing is written when the version is too small to train on
    (fewer than ``min_train_blocks`` training blocks).
    """
    from lrpath_core.tokenizer import EOS_ID, tokenizer_sha256  # imports transformers

    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    tok_sha = tokenizer_sha256(tokenizer)

    infos: list[ShardInfo] = []
    arrays: list[np.ndarray] = []
    for shard in shards:
        ids, hit = _shard_ids(store, shard, tokenizer, tok_sha)
        infos.append(
            ShardInfo(
                **shard.model_dump(exclude={"documents"}),
                documents=int(np.count_nonzero(ids == EOS_ID)),
                tokens=int(ids.size),
                from_cache=hit,
            )
        )
        arrays.append(ids)

    stream = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    n_blocks = stream.size // seq_len
    if n_blocks < 2:
        raise IngestError(
            f"version {version} has only {stream.size} tokens, need at least 2*seq_len = {2 * seq_len} "
            f"({source_url}): add text or lower seq_len"
        )
    blocks = stream[: n_blocks * seq_len].reshape(n_blocks, seq_len)
    n_val = min(n_blocks - 1, max(1, round(val_fraction * n_blocks)))
    order = np.random.default_rng((seed, version)).permutation(n_blocks)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if train_idx.size < min_train_blocks:
        raise IngestError(
            f"version {version} has {train_idx.size} training blocks, fewer than one batch of {min_train_blocks} "
            f"({source_url}): add data or lower optimizer.batch_size"
        )

    manifest = VersionManifest(
        version=version,
        name=name or posixpath.basename(source_url.rstrip("/")),
        source_url=source_url,
        shards=infos,
        data_sha256=data_sha256(s.sha256 for s in infos),
        tokenizer_sha256=tok_sha,
        seq_len=seq_len,
        train_blocks=int(train_idx.size),
        val_blocks=int(val_idx.size),
        tokens=int(stream.size),
        dropped_tokens=int(stream.size - n_blocks * seq_len),
        val_fraction=val_fraction,
        seed=seed,
        cache_hits=sum(s.from_cache for s in infos),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _save_npy(store, layout.data_blocks(version, "train"), blocks[train_idx])
    _save_npy(store, layout.data_blocks(version, "val"), blocks[val_idx])
    store.write_bytes(
        layout.data_manifest(version), (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")
    )
    return manifest


def load_manifest(store: Store, version: int) -> VersionManifest:
    rel = layout.data_manifest(version)
    try:
        raw = store.read_bytes(rel)
    except StoreError as exc:
        raise StoreError(
            f"{store.url_of(rel)} does not exist: version {version} is not ingested yet"
        ) from exc
    return VersionManifest.model_validate_json(raw)


def load_blocks(store: Store, version: int, split: Literal["train", "val"]) -> np.ndarray:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    rel = layout.data_blocks(version, split)
    try:
        blocks = _load_npy(store, rel)
    except StoreError as exc:
        raise StoreError(
            f"{store.url_of(rel)} does not exist: version {version} is not ingested yet"
        ) from exc
    if blocks.ndim != 2:
        raise StoreError(f"{store.url_of(rel)} has shape {blocks.shape}, expected (blocks, seq_len)")
    return blocks


def _shard_ids(store: Store, shard: Shard, tokenizer: Any, tok_sha: str) -> tuple[np.ndarray, bool]:
    """The shard's ids with EOS after each document, from the cache when this tokenizer saw it."""
    from lrpath_core import tokenizer as tokenizing

    cache_rel = layout.token_cache(tok_sha, shard.sha256)
    if store.exists(cache_rel):
        return _load_npy(store, cache_rel), True
    encoded = tokenizing.encode_documents(tokenizer, shard.documents)
    ids = np.fromiter(
        (t for doc in encoded for t in (*doc, tokenizing.EOS_ID)),
        dtype=np.int32,
        count=sum(len(d) + 1 for d in encoded),
    )
    _save_npy(store, cache_rel, ids)
    return ids, False


def _save_npy(store: Store, rel: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.int32), allow_pickle=False)
    store.write_bytes(rel, buf.getvalue())


def _load_npy(store: Store, rel: str) -> np.ndarray:
    return np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)
