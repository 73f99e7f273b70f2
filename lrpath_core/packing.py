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
import os
import posixpath
import tempfile
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from lrpath_core import layout, npy_files
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
    (fewer than ``min_train_blocks`` training blocks). The ids go through local files a chunk at
    a time (:mod:`lrpath_core.npy_files`): memory does not grow with the version.
    """
    from lrpath_core.tokenizer import tokenizer_sha256  # imports transformers

    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    tok_sha = tokenizer_sha256(tokenizer)

    with tempfile.TemporaryDirectory(prefix="lrpath-pack-") as tmp:
        infos: list[ShardInfo] = []
        files: list[str] = []
        for index, shard in enumerate(shards):
            path, documents, hit = _shard_ids(
                store, shard, tokenizer, tok_sha, os.path.join(tmp, f"{index}.npy")
            )
            infos.append(
                ShardInfo(
                    **shard.model_dump(exclude={"documents"}),
                    documents=documents,
                    tokens=npy_files.length(path),
                    from_cache=hit,
                )
            )
            files.append(path)

        tokens = sum(info.tokens for info in infos)
        n_blocks = tokens // seq_len
        if n_blocks < 2:
            raise IngestError(
                f"version {version} has only {tokens} tokens, need at least 2*seq_len = {2 * seq_len} "
                f"({source_url}): add text or lower seq_len"
            )
        is_val = _validation_blocks(n_blocks, val_fraction, (seed, version))
        n_val = int(np.count_nonzero(is_val))
        n_train = n_blocks - n_val
        if n_train < min_train_blocks:
            raise IngestError(
                f"version {version} has {n_train} training blocks, fewer than one batch of {min_train_blocks} "
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
            train_blocks=n_train,
            val_blocks=n_val,
            tokens=tokens,
            dropped_tokens=tokens - n_blocks * seq_len,
            val_fraction=val_fraction,
            seed=seed,
            cache_hits=sum(s.from_cache for s in infos),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        splits = {"train": os.path.join(tmp, "train.npy"), "val": os.path.join(tmp, "val.npy")}
        _write_blocks(files, seq_len, is_val, splits["train"], splits["val"])
        for split, path in splits.items():
            store.put_file(path, layout.data_blocks(version, split))
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


def _shard_ids(
    store: Store, shard: Shard, tokenizer: Any, tok_sha: str, local_path: str
) -> tuple[str, int, bool]:
    """A local ``.npy`` of the shard's ids (EOS after each document), its document count, and
    whether it came from the cache (the ids this tokenizer gave the same bytes before)."""
    from lrpath_core.tokenizer import EOS_ID, document_ids

    cache_rel = layout.token_cache(tok_sha, shard.sha256)
    if store.exists(cache_rel):
        path = store.local_path(cache_rel) if store.is_local else local_path
        if not store.is_local:
            store.get_file(cache_rel, local_path)
        documents = sum(int(np.count_nonzero(ids == EOS_ID)) for ids in npy_files.read_chunks(path))
        return path, documents, True
    ids_file = npy_files.TokenFile(local_path)
    documents = 0
    try:
        for ids in document_ids(tokenizer, shard.documents):
            ids_file.append(ids)
            documents += int(np.count_nonzero(ids == EOS_ID))
    finally:
        ids_file.close()
    store.put_file(local_path, cache_rel)
    return local_path, documents, False


def _validation_blocks(n_blocks: int, val_fraction: float, seed: tuple[int, int]) -> np.ndarray:
    """Which blocks are held out: the first ``val_fraction`` of a seeded permutation (at least one
    block each way)."""
    n_val = min(n_blocks - 1, max(1, round(val_fraction * n_blocks)))
    is_val = np.zeros(n_blocks, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n_blocks)[:n_val]] = True
    return is_val


def _write_blocks(files: list[str], seq_len: int, is_val: np.ndarray, train_path: str, val_path: str) -> None:
    """Cut the ids of ``files`` (in order) into blocks of ``seq_len`` and send each to val or train:
    the files equal ``np.save`` of ``blocks[val_idx]`` and ``blocks[train_idx]`` (both sorted)."""
    n_blocks = is_val.size
    n_val = int(np.count_nonzero(is_val))
    rows = max(1, npy_files.READ_TOKENS // seq_len)
    with open(train_path, "wb") as train, open(val_path, "wb") as val:
        train.write(npy_files.header((n_blocks - n_val, seq_len)))
        val.write(npy_files.header((n_val, seq_len)))
        pending = np.zeros(0, dtype=np.int32)
        block = 0
        for path in files:
            for ids in npy_files.read_chunks(path, rows * seq_len):
                ids = np.concatenate([pending, ids]) if pending.size else ids
                whole = min(ids.size // seq_len, n_blocks - block)
                blocks = ids[: whole * seq_len].reshape(whole, seq_len)
                to_val = is_val[block : block + whole]
                val.write(np.ascontiguousarray(blocks[to_val]).tobytes())
                train.write(np.ascontiguousarray(blocks[~to_val]).tobytes())
                block += whole
                pending = ids[whole * seq_len :].copy() if block < n_blocks else np.zeros(0, dtype=np.int32)
        if block != n_blocks:
            raise RuntimeError(f"packed {block} blocks, expected {n_blocks}")


def _load_npy(store: Store, rel: str) -> np.ndarray:
    return np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)
