from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrpath_core import shards
from lrpath_core.errors import LrpathError
from lrpath_core.shards import ShardError, data_sha256, drop_sha256, list_shards, read_shard
from lrpath_core.synthetic import synthetic_documents


def _txt(folder: Path, name: str, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _parquet(path: Path, columns: dict[str, list], **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


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
    assert read_shard(str(path)).documents == ["first doc\nsecond line", "second doc", "third doc"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"text": "one"}\n\n{"text": ""}\n{"text": "two", "x": 1}\n')
    assert read_shard(str(jsonl)).documents == ["one", "two"]
    parquet = _parquet(tmp_path / "p.parquet", {"id": [1, 2, 3], "text": ["a", " ", "c"]})
    assert read_shard(str(parquet)).documents == ["a", "c"]


def test_paragraphs_are_cut_like_the_datasets_text_builder(tmp_path) -> None:
    """Universal newlines (a lone CR is a line end), split on one empty line, then stripped."""
    path = tmp_path / "p.txt"
    path.write_bytes(b"a\r\rb\n\n\nc\n \nd\r\n\r\n\r\n e \n\n\xef\xbb\xbfbom\n\n\xc2\x85\n\n")
    assert read_shard(str(path)).documents == ["a", "b", "c\n \nd", "e", "\ufeffbom"]


def test_a_shard_is_hashed_while_it_is_read(tmp_path, monkeypatch) -> None:
    docs = synthetic_documents(1, 40, seed=1)
    txt = _txt(tmp_path, "a.txt", docs)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    parquet = _parquet(tmp_path / "c.parquet", {"text": docs}, row_group_size=7)
    for path in (txt, jsonl, parquet):
        shard = read_shard(str(path))
        raw = path.read_bytes()
        assert (shard.name, shard.url, shard.size_bytes) == (path.name, str(path), len(raw))
        assert shard.sha256 == hashlib.sha256(raw).hexdigest()
        assert shard.documents == docs

    # Tiny read chunks and a spill of the Parquet spool to disk change nothing.
    monkeypatch.setattr(shards, "READ_CHUNK", 3)
    monkeypatch.setattr(shards, "PARQUET_SPOOL_BYTES", 100)
    for path in (txt, jsonl, parquet):
        shard = read_shard(str(path))
        assert shard.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and shard.documents == docs


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


@pytest.mark.parametrize("chunk", [1 << 20, 5])
@pytest.mark.parametrize(("name", "content", "problem"), BAD_SHARDS, ids=[b[2][:24] for b in BAD_SHARDS])
def test_bad_shard_is_refused_with_its_problem(tmp_path, monkeypatch, name, content, problem, chunk) -> None:
    monkeypatch.setattr(shards, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(shards, "READ_CHUNK", chunk)
    path = tmp_path / "v1" / name
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(ShardError) as info:
        read_shard(str(path))
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert isinstance(info.value, LrpathError)


def test_the_first_problem_of_a_whole_file_check_wins(tmp_path, monkeypatch) -> None:
    """Bad UTF-8 early and a NUL byte late: NUL is reported, as a check of the whole file does."""
    monkeypatch.setattr(shards, "READ_CHUNK", 4)
    path = tmp_path / "z.txt"
    path.write_bytes(b"ok \xff then " + b"x" * 40 + b"\x00")
    with pytest.raises(ShardError, match="first at byte offset 50"):
        read_shard(str(path))
    path.write_bytes(b"abc\xe2\x82")  # a character cut off by the end of the file
    with pytest.raises(ShardError, match=r"byte offset 3 \(unexpected end of data\)"):
        read_shard(str(path))


def test_parquet_without_text_column_lists_its_columns(tmp_path) -> None:
    path = _parquet(tmp_path / "v1" / "x.parquet", {"body": ["a"], "id": [1]})
    with pytest.raises(ShardError, match=r"x.parquet: has no 'text' column \(its columns: body, id\)"):
        read_shard(str(path))
    path = _parquet(tmp_path / "v1" / "y.parquet", {"text": [1, 2]})
    with pytest.raises(ShardError, match="column 'text' has type int64, expected string"):
        read_shard(str(path))
    path = _parquet(tmp_path / "v1" / "w.parquet", {"text": pa.array([], pa.string())})
    with pytest.raises(ShardError, match="w.parquet: has no rows"):
        read_shard(str(path))


def test_a_missing_shard_is_named(tmp_path) -> None:
    with pytest.raises(ShardError, match="gone.txt: the file does not exist"):
        read_shard(str(tmp_path / "gone.txt"))


def test_data_hash_is_one_helper_for_read_and_unread_folders(tmp_path) -> None:
    folder = tmp_path / "v1"
    _txt(folder, "a.txt", ["one", "two"])
    (folder / "b.jsonl").write_text('{"text": "three"}\n')
    digests = [read_shard(u).sha256 for u in list_shards(str(folder))]
    assert data_sha256(digests) == data_sha256(reversed(digests)), "order does not matter"
    assert data_sha256(digests) == hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()
    assert drop_sha256(str(folder)) == data_sha256(digests)

    (folder / "b.jsonl").write_text("not json, but drop_sha256 does not parse\n")
    assert drop_sha256(str(folder)) != data_sha256(digests)
