from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lrpath_core.tokenizer as tokenizer_module
from lrpath_core import data
from lrpath_core.data import (
    BlockStream,
    IngestError,
    ShardError,
    ingest_version,
    list_shards,
    load_blocks,
    load_manifest,
    read_documents,
    validate_shard,
)
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


def _parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _mixed_version(folder: Path) -> dict[str, list[str]]:
    """One shard of each supported kind; returns the documents each should yield."""
    docs = synthetic_documents(1, 30, seed=3)
    _txt(folder, "a.txt", docs[:10])
    rows = [{"text": d, "meta": i if i % 2 else str(i)} for i, d in enumerate(docs[10:20])]
    (folder / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    _parquet(folder / "c.parquet", {"text": docs[20:], "id": list(range(10))})
    return {"a.txt": docs[:10], "b.jsonl": docs[10:20], "c.parquet": docs[20:]}


def test_list_shards_skips_markers_hidden_files_and_folders(tmp_path) -> None:
    folder = tmp_path / "v1"
    _txt(folder, "b.txt", ["x"])
    _txt(folder, "a.jsonl", ["x"])
    for extra in ("_READY", "manifest.json", ".hidden.txt"):
        (folder / extra).write_text("{}")
    (folder / "sub").mkdir()
    _txt(folder / "sub", "c.txt", ["x"])
    assert list_shards(str(folder)) == [str(folder / "a.jsonl"), str(folder / "b.txt")]

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_READY").write_text("")
    with pytest.raises(ShardError, match=r"empty: the folder holds no shard files"):
        list_shards(str(tmp_path / "empty"))
    with pytest.raises(ShardError, match="does not exist"):
        list_shards(str(tmp_path / "missing"))
    with pytest.raises(ShardError, match="b.txt: is a file, not a version folder"):
        list_shards(str(folder / "b.txt"))


def test_read_documents_per_format(tmp_path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"first doc\nsecond line\n\n\n\nsecond doc\r\n\r\nthird doc\n\n   \n\n")
    assert read_documents(str(path)) == ["first doc\nsecond line", "second doc", "third doc"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"text": "one"}\n\n{"text": ""}\n{"text": "two", "x": 1}\n')
    assert read_documents(str(jsonl)) == ["one", "two"]
    parquet = _parquet(tmp_path / "p.parquet", {"id": [1, 2, 3], "text": ["a", " ", "c"]})
    assert read_documents(str(parquet)) == ["a", "c"]


BAD_SHARDS = [
    ("z.txt", b"", "the file is empty"),
    ("z.txt", b"text\x00\x01\x02binary", "NUL bytes (first at byte offset 4)"),
    ("z.txt", b"ok text\n\xff\xfe more", "not valid UTF-8 at byte offset 8"),
    ("z.txt", b"short\n" + b"y" * 100 + b"\nshort", "line 2 is 100 bytes long, over the 64-byte limit"),
    ("z.txt", b"   \n\n \n", "only whitespace"),
    ("z.jsonl", b'{"text": "ok"}\n{"text": broken\n', "line 2 is not valid JSON"),
    (
        "z.jsonl",
        b'{"text": "ok"}\n\n{"body": "no text"}\n',
        "line 3 has no string \"text\" field (keys ['body'])",
    ),
    ("z.jsonl", b'{"text": "ok"}\n{"text": 5}\n', 'line 2 has no string "text" field'),
    ("z.parquet", b"PAR1 this is not parquet", "is not a readable Parquet file"),
    ("z.csv", b"text\nhello\n", "unknown shard type '.csv'"),
]


@pytest.mark.parametrize(("name", "content", "problem"), BAD_SHARDS, ids=[b[2][:24] for b in BAD_SHARDS])
def test_bad_shard_fails_before_anything_is_written(
    tmp_path, store, tok, monkeypatch, name, content, problem
) -> None:
    monkeypatch.setattr(data, "MAX_LINE_BYTES", 64)
    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", [f"a good document, number {i}" for i in range(200)])  # sorts first
    (folder / name).write_bytes(content)
    with pytest.raises(ShardError) as info:
        ingest_version(store, 1, str(folder), tok, SEQ, 0.1, seed=0)
    assert str(folder / name) in str(info.value)
    assert problem in str(info.value)
    assert list(store.walk_files("")) == [], "no cache, no blocks, no manifest"


def test_parquet_without_text_column_lists_its_columns(tmp_path) -> None:
    path = _parquet(tmp_path / "v1" / "x.parquet", {"body": ["a"], "id": [1]})
    with pytest.raises(ShardError, match=r"x.parquet: has no 'text' column \(its columns: body, id\)"):
        validate_shard(str(path))
    path = _parquet(tmp_path / "v1" / "y.parquet", {"text": [1, 2]})
    with pytest.raises(ShardError, match="column 'text' has type int64, expected string"):
        validate_shard(str(path))


def test_txt_jsonl_parquet_ingest_into_packed_blocks(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v1"
    expected_docs = _mixed_version(folder)
    (folder / "_READY").write_text("")
    manifest = ingest_version(store, 1, str(folder), tok, SEQ, val_fraction=0.2, seed=0)

    assert [s.name for s in manifest.shards] == ["a.txt", "b.jsonl", "c.parquet"]
    stream: list[int] = []
    for shard in manifest.shards:
        encoded = encode_documents(tok, expected_docs[shard.name])
        assert shard.documents == len(expected_docs[shard.name])
        assert shard.tokens == sum(len(e) + 1 for e in encoded)
        assert shard.sha256 == validate_shard(shard.url).sha256 and shard.from_cache is False
        stream += [t for e in encoded for t in (*e, 0)]
    assert manifest.tokens == len(stream)
    n = len(stream) // SEQ
    assert manifest.train_blocks + manifest.val_blocks == n
    assert manifest.val_blocks == max(1, round(0.2 * n))
    assert manifest.dropped_tokens == len(stream) - n * SEQ

    train, val = load_blocks(store, 1, "train"), load_blocks(store, 1, "val")
    assert train.dtype == np.int32 and train.shape == (manifest.train_blocks, SEQ) and val.shape[1] == SEQ
    expected_blocks = np.array(stream[: n * SEQ]).reshape(n, SEQ)
    got = np.vstack([train, val])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expected_blocks.tolist()))
    assert load_manifest(store, 1) == manifest
    assert sorted(store.walk_files("data")) == ["v1/manifest.json", "v1/train.npy", "v1/val.npy"]


def test_reingest_uses_the_token_cache(tmp_path, store, tok, monkeypatch) -> None:
    folder = tmp_path / "incoming" / "v1"
    _mixed_version(folder)
    first = ingest_version(store, 1, str(folder), tok, SEQ, 0.1, seed=0)
    assert first.cache_hits == 0
    cached = sorted(store.walk_files("cache/tokens"))
    assert len(cached) == 3 and all(c.endswith(".npy") for c in cached)

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("a cached shard was tokenized again")

    monkeypatch.setattr(tokenizer_module, "encode_documents", no_tokenizing)
    monkeypatch.setattr(data, "read_documents", no_tokenizing)
    again = ingest_version(store, 1, str(folder), tok, SEQ, 0.1, seed=0)
    assert again.cache_hits == 3 and all(s.from_cache for s in again.shards)
    assert [s.documents for s in again.shards] == [s.documents for s in first.shards]
    assert again.data_sha256 == first.data_sha256 and again.tokens == first.tokens
    assert sorted(store.walk_files("cache/tokens")) == cached

    # Same content under a new name in another version: still a hit (keyed by content).
    renamed = tmp_path / "incoming" / "v2"
    renamed.mkdir()
    (renamed / "zz.txt").write_bytes((folder / "a.txt").read_bytes())
    (renamed / "zz.jsonl").write_bytes((folder / "b.jsonl").read_bytes())
    assert ingest_version(store, 2, str(renamed), tok, SEQ, 0.1, seed=0).cache_hits == 2


def test_a_new_tokenizer_does_not_reuse_the_cache(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", synthetic_documents(1, 30, seed=2))
    ingest_version(store, 1, str(folder), tok, SEQ, 0.1, seed=0)
    other = train_tokenizer(synthetic_documents(2, 100, seed=0), vocab_size=300)
    manifest = ingest_version(store, 1, str(folder), other, SEQ, 0.1, seed=0)
    assert manifest.cache_hits == 0
    assert len(store.ls("cache/tokens")) == 2


def test_split_is_deterministic_for_a_seed(tmp_path, tok) -> None:
    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", synthetic_documents(1, 60, seed=4))
    results = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        s = Store(str(tmp_path / f"store-{label}"))
        ingest_version(s, 1, str(folder), tok, SEQ, 0.25, seed=seed)
        results[label] = (load_blocks(s, 1, "train"), load_blocks(s, 1, "val"))
    assert all(np.array_equal(x, y) for x, y in zip(results["a"], results["b"], strict=True))
    assert not np.array_equal(results["a"][1], results["c"][1])
    assert len(results["a"][1]) == len(results["c"][1])


def test_too_little_text_is_refused_without_writing_the_version(tmp_path, store, tok) -> None:
    folder = tmp_path / "incoming" / "v3"
    _txt(folder, "a.txt", ["tiny"])
    with pytest.raises(IngestError, match=r"version 3 has only \d+ tokens, need at least 2\*seq_len = 64"):
        ingest_version(store, 3, str(folder), tok, 32, 0.1, seed=0)
    assert list(store.walk_files("data")) == []


def test_manifest_is_written_last(tmp_path, tok) -> None:
    written: list[str] = []

    class RecordingStore(Store):
        def write_bytes(self, rel: str, payload: bytes) -> None:
            written.append(rel)
            super().write_bytes(rel, payload)

    folder = tmp_path / "incoming" / "v1"
    _txt(folder, "a.txt", synthetic_documents(1, 30, seed=2))
    ingest_version(RecordingStore(str(tmp_path / "store")), 1, str(folder), tok, SEQ, 0.1, seed=0)
    assert written[-3:] == ["data/v1/train.npy", "data/v1/val.npy", "data/v1/manifest.json"]


def test_loading_a_version_that_was_never_ingested_names_the_url(store) -> None:
    with pytest.raises(StoreError, match=r"data/v7/manifest.json does not exist: version 7 is not ingested"):
        load_manifest(store, 7)
    with pytest.raises(StoreError, match=r"data/v7/val.npy"):
        load_blocks(store, 7, "val")


def _labelled(version: int, n: int, seq: int = 4) -> np.ndarray:
    """Blocks whose tokens all equal ``version * 1000 + block index``: a batch row says where it came from."""
    return np.repeat((version * 1000 + np.arange(n))[:, None], seq, axis=1).astype(np.int32)


def _rows(batch: np.ndarray) -> list[int]:
    return batch[:, 0].tolist()


def test_stream_steps_and_within_version_order() -> None:
    versions = [_labelled(1, 37), _labelled(2, 20), _labelled(3, 45)]
    stream = BlockStream(versions, batch_size=8, seed=0)
    assert stream.steps_per_version == [4, 2, 5]
    assert stream.cumulative_steps == [4, 6, 11] and stream.total_steps == len(stream) == 11
    start = 0
    for i, end in enumerate(stream.cumulative_steps, start=1):
        assert stream.step_range(i) == (start, end)
        seen = []
        for step in range(start, end):
            batch = stream.batch(step)
            assert batch.dtype == np.int64 and batch.shape == (8, 4)
            assert {r // 1000 for r in _rows(batch)} == {i}
            assert stream.version_of_step(step) == i
            seen += _rows(batch)
        assert len(seen) == len(set(seen)) == (end - start) * 8, "a version's kept blocks are each used once"
        start = end
    first = [_rows(stream.batch(s)) for s in range(4)]
    assert sum(first, []) != sorted(sum(first, [])), "blocks are shuffled"
    with pytest.raises(IndexError, match="step 11 is outside the data stream: it has 11 steps"):
        stream.batch(11)
    with pytest.raises(IndexError):
        stream.batch(-1)


def test_stream_is_deterministic_and_stable_when_versions_are_added() -> None:
    v1, v2 = _labelled(1, 50), _labelled(2, 30)
    a = BlockStream([v1, v2], batch_size=4, seed=3)
    b = BlockStream([v1, v2], batch_size=4, seed=3)
    c = BlockStream([v1, v2], batch_size=4, seed=4)
    assert all(np.array_equal(a.batch(s), b.batch(s)) for s in range(a.total_steps))
    assert any(not np.array_equal(a.batch(s), c.batch(s)) for s in range(a.total_steps))
    only_v1 = BlockStream([v1], batch_size=4, seed=3)
    assert all(np.array_equal(only_v1.batch(s), a.batch(s)) for s in range(only_v1.total_steps))


def test_global_order_uses_the_same_blocks_mixed_together() -> None:
    versions = [_labelled(1, 33), _labelled(2, 26), _labelled(3, 40)]
    within = BlockStream(versions, batch_size=5, seed=1)
    mixed = BlockStream(versions, batch_size=5, seed=1, order="global")
    assert mixed.steps_per_version == within.steps_per_version and mixed.total_steps == within.total_steps
    within_rows = sum((_rows(b) for b in within), [])
    mixed_rows = sum((_rows(b) for b in mixed), [])
    assert sorted(within_rows) == sorted(mixed_rows) and within_rows != mixed_rows
    assert any(len({r // 1000 for r in _rows(mixed.batch(s))}) > 1 for s in range(mixed.total_steps))
    again = BlockStream(versions, batch_size=5, seed=1, order="global")
    assert all(np.array_equal(mixed.batch(s), again.batch(s)) for s in range(mixed.total_steps))


def test_stream_refuses_a_version_smaller_than_a_batch() -> None:
    with pytest.raises(ValueError, match="version 2 has 3 training blocks, fewer than batch_size 4"):
        BlockStream([_labelled(1, 10), _labelled(2, 3)], batch_size=4, seed=0)
    with pytest.raises(ValueError, match="one seq_len"):
        BlockStream([_labelled(1, 10, seq=4), _labelled(2, 10, seq=8)], batch_size=4, seed=0)


def test_stream_over_ingested_versions(tmp_path, store, tok) -> None:
    for v in (1, 2):
        folder = tmp_path / "incoming" / f"v{v}"
        _txt(folder, "a.txt", synthetic_documents(v, 40, seed=0))
        ingest_version(store, v, str(folder), tok, SEQ, 0.1, seed=0)
    blocks = [load_blocks(store, v, "train") for v in (1, 2)]
    stream = BlockStream(blocks, batch_size=4, seed=0)
    assert stream.steps_per_version == [len(b) // 4 for b in blocks]
    last = stream.batch(stream.total_steps - 1)
    assert any(np.array_equal(row, block) for row in last for block in blocks[1])
