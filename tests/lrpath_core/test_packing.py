from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lrpath_core.tokenizer as tokenizer_module
from lrpath_core import layout, npy_files
from lrpath_core import shards as shards_module
from lrpath_core.block_stream import BlockStream
from lrpath_core.packing import (
    SPLIT_FORMAT,
    IngestError,
    is_validation_document,
    load_blocks,
    load_manifest,
    pack_version,
)
from lrpath_core.shards import Shard, list_shards, read_shard
from lrpath_core.storage import Store, StoreError
from lrpath_core.synthetic import synthetic_documents
from lrpath_core.tokenizer import encode_documents, train_tokenizer

SEQ = 16


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(synthetic_documents(1, 150, seed=0), vocab_size=320)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "store"))


def _txt(folder: Path, name: str, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _mixed_version(folder: Path) -> dict[str, list[str]]:
    """One shard of each supported kind; returns the documents each should yield."""
    docs = synthetic_documents(1, 30, seed=3)
    _txt(folder, "a.txt", docs[:10])
    rows = [{"text": d, "meta": i if i % 2 else str(i)} for i, d in enumerate(docs[10:20])]
    (folder / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": docs[20:], "id": list(range(10))}), folder / "c.parquet")
    return {"a.txt": docs[:10], "b.jsonl": docs[10:20], "c.parquet": docs[20:]}


def _streams(tok, docs: list[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """The train and val id streams ingest must pack: each document's ids and EOS, on its side."""
    sides: tuple[list[int], list[int]] = ([], [])
    for document, ids in zip(docs, encode_documents(tok, docs), strict=True):
        sides[is_validation_document(document, val_fraction)].extend([*ids, 0])
    return sides


def _blocks(stream: list[int], seq_len: int) -> np.ndarray:
    n = len(stream) // seq_len
    return np.array(stream[: n * seq_len], dtype=np.int32).reshape(n, seq_len)


def _read(folder: Path) -> list[Shard]:
    return [read_shard(u) for u in list_shards(str(folder))]


def _pack(store: Store, version: int, folder: Path, tok, seq_len: int, val_fraction: float, seed: int):
    return pack_version(store, version, _read(folder), tok, seq_len, val_fraction, seed, None, str(folder))


def test_txt_jsonl_parquet_ingest_into_packed_blocks(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v1"
    expected_docs = _mixed_version(folder)
    (folder / "_READY").write_text("")
    manifest = _pack(store, 1, folder, tok, SEQ, val_fraction=0.2, seed=0)

    assert [s.name for s in manifest.shards] == ["a.txt", "b.jsonl", "c.parquet"]
    assert manifest.name == "v1" and manifest.source_url == str(folder)
    stream: list[int] = []
    for shard in manifest.shards:
        encoded = encode_documents(tok, expected_docs[shard.name])
        assert shard.documents == len(expected_docs[shard.name])
        assert shard.tokens == sum(len(e) + 1 for e in encoded)
        assert shard.sha256 == read_shard(shard.url).sha256 and shard.from_cache is False
        stream += [t for e in encoded for t in (*e, 0)]
    assert manifest.tokens == len(stream)
    all_docs = [d for name in ("a.txt", "b.jsonl", "c.parquet") for d in expected_docs[name]]
    train_ids, val_ids = _streams(tok, all_docs, 0.2)
    assert manifest.split_format == SPLIT_FORMAT == 2
    assert (manifest.train_documents, manifest.val_documents) == (24, 6), "the test wants both sides"
    assert manifest.val_tokens == len(val_ids) and len(train_ids) + len(val_ids) == len(stream)
    assert (manifest.train_blocks, manifest.val_blocks) == (len(train_ids) // SEQ, len(val_ids) // SEQ)
    assert manifest.dropped_tokens == len(train_ids) % SEQ + len(val_ids) % SEQ

    train, val = load_blocks(store, 1, "train"), load_blocks(store, 1, "val")
    assert train.dtype == np.int32 and train.shape == (manifest.train_blocks, SEQ) and val.shape[1] == SEQ
    assert np.array_equal(train, _blocks(train_ids, SEQ)) and np.array_equal(val, _blocks(val_ids, SEQ))
    assert load_manifest(store, 1) == manifest
    assert sorted(store.walk_files("data")) == ["v1/manifest.json", "v1/train.npy", "v1/val.npy"]


def test_reingest_uses_the_token_cache(tmp_path, store, tok, monkeypatch) -> None:
    folder = tmp_path / "incoming" / "v1"
    _mixed_version(folder)
    shards = _read(folder)
    first = pack_version(store, 1, shards, tok, SEQ, 0.3, 0, None, str(folder))
    assert first.cache_hits == 0
    cached = sorted(store.walk_files("cache/tokens"))
    assert len(cached) == 3 and all(c.endswith(".npy") for c in cached)

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("a cached shard was tokenized again")

    monkeypatch.setattr(tokenizer_module, "document_ids", no_tokenizing)
    monkeypatch.setattr(shards_module, "read_shard", no_tokenizing)  # packing never reads a shard
    again = pack_version(store, 1, shards, tok, SEQ, 0.3, 0, None, str(folder))
    assert again.cache_hits == 3 and all(s.from_cache for s in again.shards)
    assert [s.documents for s in again.shards] == [s.documents for s in first.shards]
    assert again.data_sha256 == first.data_sha256 and again.tokens == first.tokens
    assert (again.train_blocks, again.val_blocks, again.val_documents) == (
        first.train_blocks,
        first.val_blocks,
        first.val_documents,
    ), "a cached shard splits by document as a tokenized one"
    assert sorted(store.walk_files("cache/tokens")) == cached
    monkeypatch.undo()

    # Same content under a new name in another version: still a hit (keyed by content).
    renamed = tmp_path / "incoming" / "v2"
    renamed.mkdir()
    (renamed / "zz.txt").write_bytes((folder / "a.txt").read_bytes())
    (renamed / "zz.jsonl").write_bytes((folder / "b.jsonl").read_bytes())
    assert _pack(store, 2, renamed, tok, SEQ, 0.3, seed=0).cache_hits == 2


def test_a_new_tokenizer_does_not_reuse_the_cache(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", synthetic_documents(1, 30, seed=2))
    _pack(store, 1, folder, tok, SEQ, 0.3, seed=0)
    other = train_tokenizer(synthetic_documents(2, 100, seed=0), vocab_size=300)
    manifest = _pack(store, 1, folder, other, SEQ, 0.3, seed=0)
    assert manifest.cache_hits == 0
    assert len(store.ls("cache/tokens")) == 2


def test_too_little_text_is_refused_without_writing_the_version(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v3"
    _txt(folder, "a.txt", ["tiny"])
    with pytest.raises(IngestError, match=r"version 3 has only \d+ tokens, need at least 2\*seq_len = 64"):
        _pack(store, 3, folder, tok, 32, 0.1, seed=0)
    assert list(store.walk_files("data")) == []


def test_manifest_is_written_last(tmp_path, tok, monkeypatch) -> None:
    written: list[str] = []

    class RecordingStore(Store):
        def write_bytes(self, rel: str, payload: bytes) -> None:
            written.append(rel)
            super().write_bytes(rel, payload)

        def put_file(self, local_path: str, rel: str) -> None:
            written.append(rel)
            super().put_file(local_path, rel)

    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", synthetic_documents(1, 30, seed=2))
    _pack(RecordingStore(str(tmp_path / "store")), 1, folder, tok, SEQ, 0.3, seed=0)
    assert written[-3:] == ["data/v1/train.npy", "data/v1/val.npy", "data/v1/manifest.json"]


def test_loading_a_version_that_was_never_ingested_names_the_url(store) -> None:
    with pytest.raises(StoreError, match=r"data/v7/manifest.json does not exist: version 7 is not ingested"):
        load_manifest(store, 7)
    with pytest.raises(StoreError, match=r"data/v7/val.npy"):
        load_blocks(store, 7, "val")


def test_stream_over_ingested_versions(tmp_path, store, tok) -> None:
    for v in (1, 2):
        folder = tmp_path / "incoming" / f"v{v}"
        _txt(folder, "a.txt", synthetic_documents(v, 40, seed=0))
        shards = [read_shard(u) for u in list_shards(str(folder))]
        pack_version(store, v, shards, tok, SEQ, 0.2, 0, None, str(folder))
    blocks = [load_blocks(store, v, "train") for v in (1, 2)]
    stream = BlockStream(blocks, batch_size=4, seed=0)
    assert stream.steps_per_version == [len(b) // 4 for b in blocks]
    last = stream.batch(stream.total_steps - 1)
    assert any(np.array_equal(row, block) for row in last for block in blocks[1])


def _files(store: Store) -> dict[str, bytes]:
    """Every written file but the manifests' creation time."""
    out = {}
    for rel in store.walk_files(""):
        raw = store.read_bytes(rel)
        if rel.endswith("manifest.json"):
            raw = json.dumps({k: v for k, v in json.loads(raw).items() if k != "created_at"}).encode()
        out[rel] = raw
    return out


def test_packing_in_small_pieces_writes_what_np_save_of_the_whole_version_writes(
    tmp_path, tok, monkeypatch
) -> None:
    """Token files, blocks and manifest do not depend on the encode batch or the read chunk, and are
    ``np.save`` of the ids and blocks computed in memory at once (the packing before streaming)."""
    folder = tmp_path / "incoming" / "v1"
    docs = _mixed_version(folder)
    whole = Store(str(tmp_path / "whole"))
    manifest = _pack(whole, 1, folder, tok, SEQ, 0.2, seed=3)
    monkeypatch.setattr(npy_files, "READ_TOKENS", 7)
    monkeypatch.setattr(tokenizer_module, "ENCODE_BATCH_CHARS", 50)
    pieces = Store(str(tmp_path / "pieces"))
    _pack(pieces, 1, folder, tok, SEQ, 0.2, seed=3)
    assert _files(whole) == _files(pieces)

    def saved(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array, dtype=np.int32), allow_pickle=False)
        return buf.getvalue()

    per_shard = [
        np.array([t for e in encode_documents(tok, docs[name]) for t in (*e, 0)], dtype=np.int32)
        for name in ("a.txt", "b.jsonl", "c.parquet")
    ]
    for shard, ids in zip(manifest.shards, per_shard, strict=True):
        assert whole.read_bytes(layout.token_cache(manifest.tokenizer_sha256, shard.sha256)) == saved(ids)
    all_docs = [d for name in ("a.txt", "b.jsonl", "c.parquet") for d in docs[name]]
    train_ids, val_ids = _streams(tok, all_docs, 0.2)
    assert whole.read_bytes("data/v1/val.npy") == saved(_blocks(val_ids, SEQ))
    assert whole.read_bytes("data/v1/train.npy") == saved(_blocks(train_ids, SEQ))


@pytest.mark.parametrize("shape", [(0,), (1,), (10**12,), (0, 16), (3, 128), (2_000_000, 4096)])
def test_npy_header_is_the_one_np_save_writes(tmp_path, shape) -> None:
    path = tmp_path / "a.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=shape if np.prod(shape) < 1e7 else (1,))
    if np.prod(shape) < 1e7:
        assert path.read_bytes()[: len(npy_files.header(shape))] == npy_files.header(shape)
    assert len(npy_files.header(shape)) == len(npy_files.header((0,) * len(shape)))


def test_a_token_file_grows_to_the_bytes_of_np_save(tmp_path) -> None:
    ids = np.arange(1000, dtype=np.int32)
    token_file = npy_files.TokenFile(str(tmp_path / "t.npy"))
    for start in range(0, 1000, 300):
        token_file.append(ids[start : start + 300])
    token_file.close()
    buf = io.BytesIO()
    np.save(buf, ids)
    assert (tmp_path / "t.npy").read_bytes() == buf.getvalue()
    assert npy_files.length(str(tmp_path / "t.npy")) == 1000
    assert np.array_equal(np.concatenate(list(npy_files.read_chunks(str(tmp_path / "t.npy"), 333))), ids)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(StoreError, match=r"bad.npy is not a .npy file"):
        npy_files.length(str(tmp_path / "bad.npy"))
