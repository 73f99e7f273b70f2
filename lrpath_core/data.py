"""Shards → validated documents → packed token blocks, and the deterministic training stream.

Store layout written by :func:`ingest_version`::

    cache/tokens/{tokenizer_sha256[:16]}/{shard_sha256}.npy   int32 ids of one shard, EOS after each document
    data/v{N}/train.npy, data/v{N}/val.npy                     int32, shape (blocks, seq_len)
    data/v{N}/manifest.json                                    written last: its presence means complete

The training stream's position is the optimizer step alone, so a resumed run sees the same batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from fsspec.core import url_to_fs
from pydantic import BaseModel

from lrpath_core.errors import LrpathError
from lrpath_core.storage import Store, StoreError, join, storage_options_for

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
MAX_LINE_BYTES = 8 * 1024 * 1024
EOS_ID = 0
IGNORED_NAMES = ("manifest.json",)


class ShardError(LrpathError):
    """A shard cannot be ingested; the message names the file, the problem and the fix."""


class IngestError(LrpathError):
    """A version as a whole cannot be ingested (e.g. too little text for two blocks)."""


class ShardCheck(BaseModel):
    """What validation learns about a shard before anything is written."""

    name: str
    url: str
    size_bytes: int
    sha256: str


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


def list_shards(source_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Shard URLs directly in a version folder, sorted by name.

    Markers and metadata (names starting with ``_`` or ``.``, ``manifest.json``) and sub-folders
    are skipped; any other file is returned, so an unsupported one fails validation loudly.
    """
    fs, path = url_to_fs(source_url, **storage_options_for(source_url, storage_options))
    fs.invalidate_cache(path)  # object stores cache listings; a watcher must see new shards
    if fs.isfile(path):
        raise ShardError(
            f"{source_url}: is a file, not a version folder; pass the folder that holds the shards"
        )
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        entries = []
    if not entries and not fs.isdir(path):
        raise ShardError(f"{source_url}: the version folder does not exist; check the URL")
    names = sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "file")
    shards = [join(source_url, n) for n in names if not n.startswith(("_", ".")) and n not in IGNORED_NAMES]
    if not shards:
        raise ShardError(
            f"{source_url}: the folder holds no shard files; put {', '.join(SUPPORTED_SUFFIXES)} files in it"
        )
    return shards


def validate_shard(url: str, storage_options: dict[str, Any] | None = None) -> ShardCheck:
    """Check one shard completely (format, encoding, structure) and return its size and sha256."""
    name = posixpath.basename(url.rstrip("/"))
    suffix = _suffix(name)
    if suffix not in SUPPORTED_SUFFIXES:
        raise ShardError(
            f"{url}: unknown shard type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)} or move the file out of the version folder"
        )
    data = _read(url, storage_options)
    if not data:
        raise ShardError(f"{url}: the file is empty (0 bytes); remove it or write its documents again")
    if suffix == ".parquet":
        _check_parquet(url, data)
    else:
        _check_text(url, data, suffix)
    return ShardCheck(name=name, url=url, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def read_documents(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Documents of one shard via ``datasets``: paragraphs of a .txt, the ``text`` field/column otherwise."""
    import datasets  # heavy (imports torch); only ingestion needs it

    suffix = _suffix(url)
    if suffix == ".txt":
        builder, kwargs = "text", {"sample_by": "paragraph"}
    elif suffix == ".jsonl":
        builder, kwargs = "json", {}
    elif suffix == ".parquet":
        builder, kwargs = "parquet", {"columns": ["text"]}
    else:
        raise ShardError(f"{url}: unknown shard type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    with tempfile.TemporaryDirectory(prefix="lrpath-ds-") as cache_dir, _quiet_datasets(datasets):
        local = url
        if "://" in url and not url.startswith("file://"):
            # fetched with fsspec first: datasets refuses remote files when HF_HUB_OFFLINE is set
            local = os.path.join(cache_dir, "shard" + suffix)
            with open(local, "wb") as f:
                f.write(_read(url, storage_options))
        ds = datasets.load_dataset(
            builder,
            data_files=local,
            split="train",
            keep_in_memory=True,
            cache_dir=cache_dir,
            storage_options=storage_options_for(url, storage_options),
            **kwargs,
        )
        texts = ds["text"]
    if suffix == ".txt":
        return [t.strip() for t in texts if t and t.strip()]
    return [t for t in texts if t and t.strip()]


def ingest_version(
    store: Store,
    version: int,
    source_url: str,
    tokenizer: Any,
    seq_len: int,
    val_fraction: float,
    seed: int,
    name: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> VersionManifest:
    """Validate every shard, tokenize (cached per shard), pack, split, and write ``data/v{version}``."""
    from lrpath_core.tokenizer import encode_documents, tokenizer_sha256  # imports transformers

    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    checks = [validate_shard(u, storage_options) for u in list_shards(source_url, storage_options)]
    tok_sha = tokenizer_sha256(tokenizer)

    shards: list[ShardInfo] = []
    arrays: list[np.ndarray] = []
    for check in checks:
        cache_rel = f"cache/tokens/{tok_sha[:16]}/{check.sha256}.npy"
        hit = store.exists(cache_rel)
        if hit:
            ids = _load_npy(store, cache_rel)
        else:
            docs = read_documents(check.url, storage_options)
            encoded = encode_documents(tokenizer, docs)
            ids = np.fromiter(
                (t for doc in encoded for t in (*doc, EOS_ID)),
                dtype=np.int32,
                count=sum(len(d) + 1 for d in encoded),
            )
            _save_npy(store, cache_rel, ids)
        documents = int(np.count_nonzero(ids == EOS_ID))
        shards.append(
            ShardInfo(**check.model_dump(), documents=documents, tokens=int(ids.size), from_cache=hit)
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

    manifest = VersionManifest(
        version=version,
        name=name or posixpath.basename(source_url.rstrip("/")),
        source_url=source_url,
        shards=shards,
        data_sha256=hashlib.sha256("".join(sorted(s.sha256 for s in shards)).encode()).hexdigest(),
        tokenizer_sha256=tok_sha,
        seq_len=seq_len,
        train_blocks=int(train_idx.size),
        val_blocks=int(val_idx.size),
        tokens=int(stream.size),
        dropped_tokens=int(stream.size - n_blocks * seq_len),
        val_fraction=val_fraction,
        seed=seed,
        cache_hits=sum(s.from_cache for s in shards),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    base = f"data/v{version}"
    _save_npy(store, f"{base}/train.npy", blocks[train_idx])
    _save_npy(store, f"{base}/val.npy", blocks[val_idx])
    store.write_bytes(f"{base}/manifest.json", (manifest.model_dump_json(indent=2) + "\n").encode("utf-8"))
    return manifest


def load_manifest(store: Store, version: int) -> VersionManifest:
    rel = f"data/v{version}/manifest.json"
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
    rel = f"data/v{version}/{split}.npy"
    try:
        blocks = _load_npy(store, rel)
    except StoreError as exc:
        raise StoreError(
            f"{store.url_of(rel)} does not exist: version {version} is not ingested yet"
        ) from exc
    if blocks.ndim != 2:
        raise StoreError(f"{store.url_of(rel)} has shape {blocks.shape}, expected (blocks, seq_len)")
    return blocks


class BlockStream:
    """Batches for every optimizer step, fixed by ``seed`` and the versions' blocks alone.

    Version ``i`` (1-based) permutes its blocks with ``default_rng((seed, i))`` and keeps the first
    ``(n_i // batch_size) * batch_size``; ``steps_per_version[i-1]`` is ΔT_i. ``within_version``
    order plays the versions one after another (version i fills steps ``S_{i-1} .. S_i - 1``), and
    a version's batches do not depend on which versions follow it. ``global`` order shuffles the
    same kept blocks together with ``default_rng((seed, 0))`` (PTFS).
    """

    def __init__(
        self,
        versions: list[np.ndarray],
        batch_size: int,
        seed: int,
        order: Literal["within_version", "global"] = "within_version",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if order not in ("within_version", "global"):
            raise ValueError(f"order must be 'within_version' or 'global', got {order!r}")
        if not versions:
            raise ValueError("BlockStream needs at least one version")
        seq_lens = {v.shape[1] if v.ndim == 2 else None for v in versions}
        if len(seq_lens) != 1 or None in seq_lens:
            raise ValueError(
                f"every version must be a 2-D (blocks, seq_len) array of one seq_len; got {seq_lens}"
            )
        self.versions = versions
        self.batch_size = batch_size
        self.seed = seed
        self.order = order
        self.seq_len = int(versions[0].shape[1])
        self.steps_per_version: list[int] = []
        sources, rows = [], []
        for i, blocks in enumerate(versions, start=1):
            n = int(blocks.shape[0])
            if n < batch_size:
                raise ValueError(
                    f"version {i} has {n} training blocks, fewer than batch_size {batch_size}: "
                    f"add data to version {i} or lower the batch size"
                )
            steps = n // batch_size
            kept = np.random.default_rng((seed, i)).permutation(n)[: steps * batch_size]
            self.steps_per_version.append(steps)
            sources.append(np.full(kept.size, i - 1, dtype=np.int32))
            rows.append(kept)
        self._source = np.concatenate(sources)
        self._row = np.concatenate(rows)
        if order == "global":
            shuffle = np.random.default_rng((seed, 0)).permutation(self._row.size)
            self._source, self._row = self._source[shuffle], self._row[shuffle]
        self.cumulative_steps: list[int] = np.cumsum(self.steps_per_version).tolist()
        self.total_steps: int = self.cumulative_steps[-1]

    def __len__(self) -> int:
        return self.total_steps

    def version_of_step(self, step: int) -> int:
        """1-based version whose data fills ``step`` in ``within_version`` order."""
        self._check(step)
        return int(np.searchsorted(self.cumulative_steps, step, side="right")) + 1

    def step_range(self, version: int) -> tuple[int, int]:
        """``(S_{i-1}, S_i)``: the steps version ``i`` fills in ``within_version`` order."""
        if not 1 <= version <= len(self.versions):
            raise IndexError(f"version {version} is not in this stream (1..{len(self.versions)})")
        end = self.cumulative_steps[version - 1]
        return end - self.steps_per_version[version - 1], end

    def batch(self, step: int) -> np.ndarray:
        """The ``(batch_size, seq_len)`` int64 batch of optimizer step ``step``."""
        self._check(step)
        span = slice(step * self.batch_size, (step + 1) * self.batch_size)
        source, row = self._source[span], self._row[span]
        out = np.empty((self.batch_size, self.seq_len), dtype=np.int64)
        for v in np.unique(source):
            mask = source == v
            out[mask] = self.versions[int(v)][row[mask]]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.batch(s) for s in range(self.total_steps))

    def _check(self, step: int) -> None:
        if not 0 <= step < self.total_steps:
            raise IndexError(
                f"step {step} is outside the data stream: it has {self.total_steps} steps "
                f"(0..{self.total_steps - 1}) for {len(self.versions)} version(s); "
                f"ingest the next version to go further"
            )


def _suffix(name: str) -> str:
    base = posixpath.basename(name.rstrip("/"))
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else ""


def _read(url: str, storage_options: dict[str, Any] | None) -> bytes:
    fs, path = url_to_fs(url, **storage_options_for(url, storage_options))
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise ShardError(
            f"{url}: the file does not exist (it was listed, then removed?); list the folder again"
        ) from exc
    except IsADirectoryError as exc:
        raise ShardError(f"{url}: is a folder, not a shard file; move it out of the version folder") from exc


def _check_text(url: str, data: bytes, suffix: str) -> None:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ShardError(
            f"{url}: contains NUL bytes (first at byte offset {nul}), so it looks binary; "
            f"shards must be UTF-8 text: check that the right file was uploaded"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ShardError(
            f"{url}: is not valid UTF-8 at byte offset {exc.start} ({exc.reason}); "
            f"re-encode it as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)"
        ) from exc
    limit = MAX_LINE_BYTES
    lines = data.split(b"\n")
    longest = max(range(len(lines)), key=lambda k: len(lines[k]))
    if len(lines[longest]) > limit:
        raise ShardError(
            f"{url}: line {longest + 1} is {len(lines[longest])} bytes long, over the {limit}-byte limit; "
            f"break it into lines or paragraphs (a document may span many lines)"
        )
    if not text.strip():
        raise ShardError(
            f"{url}: holds only whitespace, no documents; remove it or write its documents again"
        )
    if suffix == ".jsonl":
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ShardError(
                    f"{url}: line {number} is not valid JSON ({exc.msg}); each line must be one JSON object"
                ) from exc
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                what = f"keys {sorted(row)}" if isinstance(row, dict) else f"a JSON {type(row).__name__}"
                raise ShardError(
                    f'{url}: line {number} has no string "text" field ({what}); '
                    f'each line must be an object like {{"text": "..."}}'
                )


def _check_parquet(url: str, data: bytes) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ShardError(
            f"{url}: is not a readable Parquet file ({exc}); write it again with pyarrow or pandas"
        ) from exc
    schema = parquet.schema_arrow
    if "text" not in schema.names:
        raise ShardError(
            f"{url}: has no 'text' column (its columns: {', '.join(schema.names) or 'none'}); "
            f"rename the column that holds the documents to 'text'"
        )
    kind = schema.field("text").type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise ShardError(
            f"{url}: column 'text' has type {kind}, expected string; store the documents as strings"
        )
    if parquet.metadata.num_rows == 0:
        raise ShardError(f"{url}: has no rows; remove it or write its documents again")


def _save_npy(store: Store, rel: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.int32), allow_pickle=False)
    store.write_bytes(rel, buf.getvalue())


def _load_npy(store: Store, rel: str) -> np.ndarray:
    return np.load(io.BytesIO(store.read_bytes(rel)), allow_pickle=False)


@contextlib.contextmanager
def _quiet_datasets(datasets: Any) -> Iterator[None]:
    """No progress bars or info logs from ``datasets`` while we load a shard; restore the caller's choice."""
    from datasets.utils import logging as ds_logging

    bars_were_off = datasets.is_progress_bar_enabled() is False
    level = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if not bars_were_off:
            datasets.enable_progress_bars()
