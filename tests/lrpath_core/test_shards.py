from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpath_core import shard_text, shards
from lrpath_core import spool as spool_module
from lrpath_core.errors import LrpathError
from lrpath_core.shards import ShardError, ShardReadError, data_sha256, drop_sha256, list_shards, read_shard
from lrpath_core.spool import DocumentSpool
from lrpath_core.synthetic import synthetic_documents


def _txt(folder: Path, name: str, docs: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _docs(path: Path, **kwargs) -> list[str]:
    return list(read_shard(str(path), **kwargs).documents)


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
    assert _docs(path) == ["first doc\nsecond line", "second doc", "third doc"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"text": "one"}\n\n{"text": ""}\n{"text": null}\n{"text": "two", "x": 1}\n')
    assert _docs(jsonl) == ["one", "two"]
    parquet = _parquet(tmp_path / "p.parquet", {"id": [1, 2, 3, 4], "text": ["a", " ", None, "c"]})
    assert _docs(parquet) == ["a", "c"]


def test_paragraphs_are_cut_like_the_datasets_text_builder(tmp_path) -> None:
    """Universal newlines (a lone CR is a line end), split on one empty line, then stripped."""
    path = tmp_path / "p.txt"
    path.write_bytes(b"a\r\rb\n\n\nc\n \nd\r\n\r\n\r\n e \n\n\xef\xbb\xbfbom\n\n\xc2\x85\n\n")
    assert _docs(path) == ["a", "b", "c\n \nd", "e", "\ufeffbom"]


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
        assert list(shard.documents) == docs and len(shard.documents) == len(docs)

    # Tiny read chunks and a spill of the Parquet spool to disk change nothing.
    monkeypatch.setattr(shards, "READ_CHUNK", 3)
    monkeypatch.setattr(shards, "PARQUET_SPOOL_BYTES", 100)
    monkeypatch.setattr(shards, "PARQUET_BATCH_ROWS", 2)
    for path in (txt, jsonl, parquet):
        shard = read_shard(str(path))
        assert shard.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and list(shard.documents) == docs


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


NO_DOCUMENTS = [
    ("z.jsonl", b'{"text": ""}\n{"text": "  \\n "}\n'),
    ("z.jsonl", b'{"text": null}\n\n{"text": null, "id": 3}\n'),
    ("z.txt", b"\xef\xbb\xbf\n\n  \n"),
]


@pytest.mark.parametrize(("name", "content"), NO_DOCUMENTS, ids=["empty texts", "null texts", "bom only"])
def test_a_shard_without_documents_is_refused(tmp_path, name, content) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ShardError, match="no documents") as info:
        read_shard(str(path))
    assert str(path) in str(info.value)


def test_a_parquet_shard_of_nulls_and_blanks_is_refused(tmp_path) -> None:
    path = _parquet(tmp_path / "n.parquet", {"text": pa.array([None, "", " \n", None], pa.string())})
    with pytest.raises(ShardError, match=r"n.parquet: holds no documents"):
        read_shard(str(path))


def test_a_lone_surrogate_in_jsonl_is_refused_naming_the_line(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "ok \\ud800 then"}\n')
    with pytest.raises(ShardError, match=r's.jsonl: line 2: its "text" holds a lone surrogate') as info:
        read_shard(str(path))
    assert "'\\ud800' at character 3" in str(info.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"n": ' + b"9" * 5000 + b"}", "line 1 is not valid JSON (Exceeds the limit"),
        (b"[" * 100_000 + b"]" * 100_000, "line 1 is not valid JSON (maximum recursion depth"),
    ],
    ids=["huge integer", "deep nesting"],
)
def test_json_that_python_cannot_load_is_refused(tmp_path, line, problem) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(ShardError, match=re.escape(problem)):
        read_shard(str(path))


def test_a_leading_bom_is_not_text(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shards, "READ_CHUNK", 1)  # the BOM arrives one byte at a time
    txt = tmp_path / "b.txt"
    txt.write_bytes(b"\xef\xbb\xbfhello\n\n\xef\xbb\xbfsecond\n")
    assert _docs(txt) == ["hello", "\ufeffsecond"], "only the BOM that opens the file is dropped"
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"text": "one"}\n{"text": "two"}\n')
    assert _docs(jsonl) == ["one", "two"]
    shard = read_shard(str(jsonl))
    assert shard.sha256 == hashlib.sha256(jsonl.read_bytes()).hexdigest(), "the hash covers the BOM"


def test_a_shard_over_the_size_cap_is_refused_before_it_is_opened(tmp_path, monkeypatch) -> None:
    path = _txt(tmp_path, "big.txt", ["x" * 100])

    def never(*args, **kwargs):
        raise AssertionError("a shard over the cap was opened")

    monkeypatch.setattr(shards, "_chunks", never)
    with pytest.raises(ShardError) as info:
        read_shard(str(path), max_bytes=50, size=path.stat().st_size)
    message = str(info.value)
    assert str(path) in message and "is 101 bytes" in message and "data.max_shard_bytes = 50" in message


@pytest.mark.parametrize("name", ["big.txt", "big.parquet"])
def test_a_shard_over_the_size_cap_is_refused_while_streaming(tmp_path, monkeypatch, name) -> None:
    """No size from the listing: the stream stops at the first chunk past the cap."""
    monkeypatch.setattr(shards, "READ_CHUNK", 16)
    path = tmp_path / name
    path.write_bytes(b"y" * 1000)
    read: list[int] = []
    real_capped = shards._capped

    def counting(url, chunks, max_bytes):
        for chunk in real_capped(url, chunks, max_bytes):
            read.append(len(chunk))
            yield chunk

    monkeypatch.setattr(shards, "_capped", counting)
    with pytest.raises(ShardError, match=r"holds more than 100 bytes \(read 112 so far\)") as info:
        read_shard(str(path), max_bytes=100)
    assert str(path) in str(info.value) and "data.max_shard_bytes" in str(info.value)
    assert sum(read) <= 100, "reading stopped at the cap"
    if name.endswith(".txt"):
        assert _docs(path, max_bytes=1000) == ["y" * 1000], "exactly at the cap is accepted"


def test_a_paragraph_or_value_over_the_document_limit_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shards, "MAX_DOCUMENT_CHARS", 20)
    monkeypatch.setattr(shards, "READ_CHUNK", 7)
    ok = _txt(tmp_path, "ok.txt", ["short one", "x" * 19])  # 20 characters with its line end
    assert _docs(ok) == ["short one", "x" * 19]
    long = _txt(tmp_path, "long.txt", ["short one", "a\nb\nc\n" + "y" * 30])
    with pytest.raises(
        ShardError, match=r"long.txt: the paragraph from line 3 holds more than 20 characters"
    ):
        read_shard(str(long))
    parquet = _parquet(tmp_path / "long.parquet", {"text": ["fine", "z" * 21]})
    with pytest.raises(ShardError, match=r"long.parquet: row 2 holds more than 20 characters"):
        read_shard(str(parquet))


def test_a_paragraph_without_end_is_refused_while_it_streams_in() -> None:
    """A file without blank lines is not gathered into one huge paragraph: refused past the limit."""
    spool = DocumentSpool()
    cut = shard_text.Paragraphs(spool, max_chars=100)
    for _ in range(6):
        cut.feed("a line of text\n")  # 15 characters each
    assert cut.problem is None and len(cut._carry) == 90
    cut.feed("a line of text\n")
    assert cut.problem is not None and "from line 1 holds more than 100 characters" in cut.problem
    assert cut._carry == "", "nothing more is kept"
    spool.close()


def test_invalid_utf8_inside_a_parquet_string_column_is_refused(tmp_path) -> None:
    raw = pa.array([b"fine", b"bad \xff\xfe"], pa.binary()).view(pa.string())
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"text": raw}), path)
    with pytest.raises(ShardError) as info:
        read_shard(str(path))
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)


def test_any_failure_inside_a_file_is_a_shard_error(tmp_path, monkeypatch) -> None:
    path = _txt(tmp_path, "a.txt", ["one", "two"])

    def broken(self, text):
        raise KeyError("surprise")

    monkeypatch.setattr(shard_text.Paragraphs, "feed", broken)
    with pytest.raises(
        ShardError, match=r"a.txt: could not be read as a .txt shard \(KeyError: 'surprise'\)"
    ):
        read_shard(str(path))


def test_a_source_that_cannot_be_read_is_not_the_file_s_fault(tmp_path, monkeypatch) -> None:
    """A network or permission failure is a ShardReadError: one line, and nothing is quarantined."""
    path = _txt(tmp_path, "a.txt", ["one"])

    def unreachable(*args, **kwargs):
        raise ConnectionError("endpoint went away")

    monkeypatch.setattr(shards, "url_to_fs", unreachable)
    with pytest.raises(
        ShardReadError, match="a.txt: could not be read .ConnectionError: endpoint went away"
    ) as info:
        read_shard(str(path))
    assert not isinstance(info.value, ShardError) and isinstance(info.value, LrpathError)


def test_spool_streams_documents_back_any_number_of_times(monkeypatch) -> None:
    monkeypatch.setattr(spool_module, "READ_CHUNK", 5)
    docs = ["a", "ünïcödé 🙂", "x" * 50, "", "end"]
    spool = DocumentSpool()
    for doc in docs:
        spool.append(doc)
    first = iter(spool)
    assert next(first) == "a"
    assert list(spool) == docs, "iterations do not share a position"
    assert list(first) == docs[1:] and len(spool) == 5
    with pytest.raises(UnicodeEncodeError):
        spool.append("\ud800")
    assert list(spool) == docs, "a refused document leaves nothing behind"
    spool.close()


def test_iterating_a_shard_nobody_holds_keeps_its_documents(tmp_path) -> None:
    """``for d in read_shard(url).documents``: the iterator alone keeps the spooled file open."""
    path = _txt(tmp_path, "a.txt", ["one", "two"])
    assert [d for d in read_shard(str(path)).documents] == ["one", "two"]  # noqa: C416 - the point


def _whole_text_paragraphs(text: str) -> list[str]:
    """The reference: the whole file split at once, as before streaming."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


_PIECES = st.sampled_from(
    ["\n", "\r", "\r\n", "\n\n", " ", "\t", "word", "é", "🙂", "\ufeff", "\x85", "\u2028"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40), chunk=st.integers(1, 9), data=st.data())
def test_streamed_paragraphs_equal_the_whole_file_split(pieces, chunk, data) -> None:
    text = "".join(pieces)
    expected = _whole_text_paragraphs(text)
    spool = DocumentSpool()
    cut = shard_text.Paragraphs(spool, max_chars=10_000)
    raw = text.encode("utf-8")
    scan = shard_text.TextScan(cut.feed)
    for start in range(0, len(raw), chunk):
        scan.feed(raw[start : start + chunk])
    scan.finish()
    cut.finish()
    assert cut.problem is None and list(spool) == expected
    assert scan.nonblank == bool(text.removeprefix("\ufeff").strip())
    spool.close()
