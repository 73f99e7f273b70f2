"""Documents → token ids → train and val documents → packed blocks of one version.

:func:`pack_version` writes (paths from :mod:`lrpath_core.layout`)::

    cache/tokens/{tokenizer_sha256[:16]}/{shard_sha256}.npy   int32 ids of one shard, EOS after each document
    data/v{N}/train.npy, data/v{N}/val.npy                     int32, shape (blocks, seq_len)
    data/v{N}/manifest.json                                    written last: its presence means complete

Validation is split by *document* before packing (:func:`is_validation_document`: a hash of the
document's text), so no block mixes held-out text with trained text, and a document lands on the
same side in every version, shard and position; the tokenizer is trained on version 1's training
documents only (:func:`training_documents`). A document is a paragraph of a ``.txt`` shard
(blank-line separated) or one record's ``text`` of a ``.jsonl``/``.parquet`` shard. The token
cache is keyed by content and holds every document's ids (the split does not change them), so a
shard seen before (in any version, under any name) is not tokenized again.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from lrpath_core import layout, npy_files
from lrpath_core.errors import LrpathError
from lrpath_core.shards import Shard, ShardCheck, data_sha256
from lrpath_core.storage import Store, StoreError

SPLIT_FORMAT = 2
"""How ``data/v{N}`` was split: 2 holds out whole documents by the hash of their text (before
packing); 1 (manifests without ``split_format``) held out packed blocks, whose neighbours were
trained on, and trained the tokenizer on version 1's validation text too."""
_VAL_SALT = b"lrpath-val-v2\x00"


class IngestError(LrpathError):
    """A version as a whole cannot be ingested (e.g. too little text for two blocks)."""


class ShardInfo(ShardCheck):
    documents: int
    tokens: int
    from_cache: bool = False


class VersionManifest(BaseModel):
    split_format: int = 1
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
    train_documents: int | None = None
    val_documents: int | None = None
    val_tokens: int | None = None
    seed: int
    cache_hits: int
    created_at: str


def is_validation_document(text: str, val_fraction: float) -> bool:
    """Whether a document is held out: the first 8 bytes of a salted BLAKE2b of its UTF-8 text, read
    as a fraction of 2**64, fall below ``val_fraction``. The same text is on the same side in every
    version, shard and position, and about ``val_fraction`` of the documents are held out."""
    digest = hashlib.blake2b(_VAL_SALT + text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < val_fraction * 2**64


def training_documents(shards: list[Shard], val_fraction: float) -> Iterator[str]:
    """The shards' documents that are not held out, in order (what the tokenizer is trained on)."""
    for shard in shards:
        for document in shard.documents:
            if not is_validation_document(document, val_fraction):
                yield document


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
    """Tokenize the shards (cached per shard), split by document, pack, and write ``data/v{version}``.

    Each document (its ids and its EOS) goes to val when :func:`is_validation_document` says so,
    else to train; each side is cut into blocks of ``seq_len`` in the shards' order, its last
    partial block dropped. ``seed`` is only recorded (the split does not depend on it). Nothing is
    written unless both sides have a block and train has ``min_train_blocks``. The ids go through
    local files a chunk at a time (:mod:`lrpath_core.npy_files`): memory does not grow with the
    version (one byte per document for the split).
    """
    from lrpath_core.tokenizer import tokenizer_sha256  # imports transformers

    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    tok_sha = tokenizer_sha256(tokenizer)

    with tempfile.TemporaryDirectory(prefix="lrpath-pack-") as tmp:
        infos: list[ShardInfo] = []
        sides = {
            split: npy_files.TokenFile(os.path.join(tmp, f"{split}-ids.npy")) for split in ("train", "val")
        }
        documents = {"train": 0, "val": 0}
        try:
            for index, shard in enumerate(shards):
                path, is_val, hit = _shard_ids(
                    store, shard, tokenizer, tok_sha, os.path.join(tmp, f"{index}.npy"), val_fraction
                )
                infos.append(
                    ShardInfo(
                        **shard.model_dump(exclude={"documents"}),
                        documents=is_val.size,
                        tokens=npy_files.length(path),
                        from_cache=hit,
                    )
                )
                _route_documents(path, is_val, sides["train"], sides["val"])
                documents["val"] += int(np.count_nonzero(is_val))
                if not hit:
                    os.remove(path)
        finally:
            for side in sides.values():
                side.close()
        tokens = sum(info.tokens for info in infos)
        n_train, n_val = sides["train"].size // seq_len, sides["val"].size // seq_len
        documents["train"] = sum(info.documents for info in infos) - documents["val"]
        manifest = VersionManifest(
            split_format=SPLIT_FORMAT,
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
            dropped_tokens=tokens - (n_train + n_val) * seq_len,
            val_fraction=val_fraction,
            train_documents=documents["train"],
            val_documents=documents["val"],
            val_tokens=sides["val"].size,
            seed=seed,
            cache_hits=sum(s.from_cache for s in infos),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _check_split(manifest, min_train_blocks)
        for split, blocks in (("train", n_train), ("val", n_val)):
            path = os.path.join(tmp, f"{split}.npy")
            _write_blocks(sides[split].path, seq_len, blocks, path)
            store.put_file(path, layout.data_blocks(version, split))
    store.write_bytes(
        layout.data_manifest(version), (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")
    )
    return manifest


def _check_split(m: VersionManifest, min_train_blocks: int) -> None:
    """Refuse a version that cannot give both a validation block and a batch of training blocks."""
    if m.tokens < 2 * m.seq_len:
        raise IngestError(
            f"version {m.version} has only {m.tokens} tokens, need at least 2*seq_len = {2 * m.seq_len} "
            f"({m.source_url}): add text or lower seq_len"
        )
    if m.val_blocks < 1:
        raise IngestError(
            f"version {m.version} holds out {m.val_documents} of its {m.train_documents + m.val_documents} "
            f"documents for validation ({m.val_tokens} tokens; data.val_fraction={m.val_fraction} picks "
            f"documents by a hash of their text), fewer than one block of seq_len={m.seq_len} tokens "
            f"({m.source_url}): add documents (split long texts into paragraphs or records), or raise "
            "data.val_fraction"
        )
    if m.train_blocks < min_train_blocks:
        raise IngestError(
            f"version {m.version} has {m.train_blocks} training blocks, fewer than one batch of "
            f"{min_train_blocks} ({m.source_url}): add data or lower optimizer.batch_size"
        )


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
    store: Store, shard: Shard, tokenizer: Any, tok_sha: str, local_path: str, val_fraction: float
) -> tuple[str, np.ndarray, bool]:
    """A local ``.npy`` of the shard's ids (EOS after each document), which of its documents are
    held out (one bool per document), and whether the ids came from the cache (the ids this
    tokenizer gave the same bytes before)."""
    from lrpath_core.tokenizer import EOS_ID, document_ids

    held_out = bytearray()

    def documents() -> Iterator[str]:
        for document in shard.documents:
            held_out.append(is_validation_document(document, val_fraction))
            yield document

    cache_rel = layout.token_cache(tok_sha, shard.sha256)
    if store.exists(cache_rel):
        path = store.local_path(cache_rel) if store.is_local else local_path
        if not store.is_local:
            store.get_file(cache_rel, local_path)
        for _ in documents():
            pass
        hit = True
    else:
        path, hit = local_path, False
        ids_file = npy_files.TokenFile(local_path)
        try:
            for ids in document_ids(tokenizer, documents()):
                ids_file.append(ids)
        finally:
            ids_file.close()
        store.put_file(local_path, cache_rel)
    ends = sum(int(np.count_nonzero(ids == EOS_ID)) for ids in npy_files.read_chunks(path))
    if ends != len(held_out):
        raise StoreError(
            f"{store.url_of(cache_rel)} holds {ends} documents, but {shard.url} has {len(held_out)}: "
            "remove the cached file and ingest again"
        )
    return path, np.frombuffer(bytes(held_out), dtype=bool), hit


def _route_documents(
    path: str, is_val: np.ndarray, train: npy_files.TokenFile, val: npy_files.TokenFile
) -> None:
    """Append each document's ids (EOS included) of the shard's ``.npy`` to ``val`` or ``train``."""
    from lrpath_core.tokenizer import EOS_ID

    document = 0
    for ids in npy_files.read_chunks(path):
        ends = ids == EOS_ID
        # a token belongs to the document of the EOS at or after it
        owner = document + np.cumsum(ends) - ends
        to_val = is_val[owner]
        val.append(ids[to_val])
        train.append(ids[~to_val])
        document += int(np.count_nonzero(ends))


def _write_blocks(ids_path: str, seq_len: int, blocks: int, out_path: str) -> None:
    """``np.save`` of the first ``blocks`` blocks of ``seq_len`` ids of a 1-D ``.npy``, written in pieces."""
    left = blocks * seq_len
    with open(out_path, "wb") as out:
        out.write(npy_files.header((blocks, seq_len)))
        for ids in npy_files.read_chunks(ids_path):
            if left <= 0:
                break
            piece = ids[:left]
            out.write(np.ascontiguousarray(piece).tobytes())
            left -= piece.size
    if left > 0:
        raise RuntimeError(
            f"packed {blocks * seq_len - left} ids into {out_path}, expected {blocks * seq_len}"
        )


def _load_npy(store: Store, rel: str) -> np.ndarray:
    return np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)
