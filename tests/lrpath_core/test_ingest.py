"""A drop becomes a version: each shard read once; bad drops named, quarantined with a reason, and held."""

from __future__ import annotations

import builtins
import io
import itertools
import json
import os
import re
from collections import Counter
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lrpath_core import ingest as ingest_module
from lrpath_core import layout
from lrpath_core import shards as shards_module
from lrpath_core.config import DataConfig
from lrpath_core.incoming import ready_folders, release_hold
from lrpath_core.ingest import DropRejected, add_version, ingest_data, read_drop, steps_of
from lrpath_core.packing import is_validation_document, load_manifest, pack_version
from lrpath_core.shards import MAX_LINE_BYTES, ShardError
from lrpath_core.storage import Store
from lrpath_core.synthetic import synthetic_documents
from lrpath_core.timeline import TimelineError
from lrpath_core.timeline_store import load_timeline
from lrpath_core.tokenizer import train_tokenizer

# distinct paragraphs: validation holds out whole documents by their text, so repeats of one
# paragraph would all land on one side
GOOD = "".join(
    f"A well formed entry {i} about apples.\n\nAnother paragraph {i} about pears and plums.\n\n"
    for i in range(200)
)


def write_bad(folder: Path, kind: str) -> str | None:
    if kind == "empty file":
        (folder / "bad.txt").write_bytes(b"")
    elif kind == "invalid utf-8":
        (folder / "bad.txt").write_bytes(b"fine text \xff\xfe broken")
    elif kind == "binary":
        (folder / "bad.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    elif kind == "huge single line":
        (folder / "bad.txt").write_bytes(b"x" * (MAX_LINE_BYTES + 1024))
    elif kind == "jsonl without text":
        (folder / "bad.jsonl").write_text(json.dumps({"body": "no text field"}) + "\n")
    elif kind == "parquet without text":
        pq.write_table(pa.table({"content": ["a", "b"]}), folder / "bad.parquet")
    elif kind == "lone surrogate in jsonl":
        (folder / "bad.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "\\ud800"}\n')
    elif kind == "jsonl of empty texts":
        (folder / "bad.jsonl").write_bytes(b'{"text": ""}\n{"text": null}\n{"text": " "}\n')
    elif kind == "parquet of nulls":
        pq.write_table(pa.table({"text": pa.array([None, None, ""], pa.string())}), folder / "bad.parquet")
    elif kind == "parquet with invalid utf-8":
        raw = pa.array([b"ok", b"\xff\xfe broken"], pa.binary()).view(pa.string())
        pq.write_table(pa.table({"text": raw}), folder / "bad.parquet")
    elif kind == "folder with no files":
        return None
    return next(p.name for p in folder.iterdir() if p.name.startswith("bad"))


CASES = {
    "empty file": "empty",
    "invalid utf-8": "UTF-8",
    "binary": "NUL",
    "huge single line": "line",
    "jsonl without text": "text",
    "parquet without text": "text",
    "lone surrogate in jsonl": "lone surrogate",
    "jsonl of empty texts": "no documents",
    "parquet of nulls": "no documents",
    "parquet with invalid utf-8": "UTF-8",
    "folder with no files": "no shard files",
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_drop_is_named_quarantined_and_held(ingested_store, kind):
    store, cfg = ingested_store
    folder = Path(store.root) / layout.incoming_dir("v3")
    folder.mkdir(parents=True)
    if kind != "folder with no files":
        (folder / "good.txt").write_text(GOOD)
    bad = write_bad(folder, kind)
    (folder / layout.READY_MARKER).write_text("ready\n")
    before = store.read_bytes(layout.TIMELINE)

    with pytest.raises(DropRejected) as info:
        add_version(store, cfg, store.url_of(layout.incoming_dir("v3")), name="v3")
    message = str(info.value)
    assert CASES[kind].lower() in message.lower()
    assert "lrpath release v3" in message
    assert store.read_bytes(layout.TIMELINE) == before, "the timeline must not change"
    assert not store.exists(layout.data_dir(3)), "nothing may be written for a held drop"
    assert store.exists(layout.incoming_file("v3", layout.HELD_MARKER)) and "v3" not in ready_folders(store)
    if bad is not None:
        assert bad in message
        assert store.exists(layout.quarantine_file("v3", bad))
        assert not store.exists(layout.incoming_file("v3", bad))
        reason = store.read_text(layout.quarantine_file("v3", f"{bad}.reason.txt"))
        assert bad in reason and CASES[kind].lower() in reason.lower()
        assert store.exists(layout.incoming_file("v3", "good.txt")), (
            "valid files of the drop are kept, not dropped"
        )

        release_hold(store, "v3")
        assert "v3" in ready_folders(store)
        record = add_version(store, cfg, store.url_of(layout.incoming_dir("v3")), name="v3")
        assert record.version == 3
        timeline, _ = load_timeline(store)
        assert [v.name for v in timeline.versions] == ["v1", "v2", "v3"]


def test_read_drop_lists_every_problem_and_holds_nothing_outside_incoming(tmp_path) -> None:
    store = Store(str(tmp_path / "store"))
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD)
    (folder / "b.txt").write_bytes(b"")
    (folder / "c.jsonl").write_text("[1]\n")
    with pytest.raises(DropRejected) as info:
        read_drop(store, str(folder), "drop")
    message = str(info.value)
    assert "(2 problem(s))" in message and "b.txt: the file is empty" in message
    assert 'c.jsonl: line 1 has no string "text" field (a JSON list)' in message
    assert "accept the 1 valid file(s)" in message
    assert isinstance(info.value, ShardError)
    assert list(store.walk_files("")) == [], "a folder outside incoming/ is not moved or marked"
    assert sorted(os.listdir(folder)) == ["a.txt", "b.txt", "c.jsonl"]

    (folder / "b.txt").unlink()
    (folder / "c.jsonl").unlink()
    [shard] = read_drop(store, str(folder), "drop")
    assert shard.name == "a.txt" and len(shard.documents) == 400


@pytest.mark.parametrize("listed_size", [True, False], ids=["size from the listing", "size while streaming"])
def test_a_shard_over_the_size_cap_holds_the_drop(tmp_path, make_config, monkeypatch, listed_size) -> None:
    store = Store(str(tmp_path / "store"))
    cfg = make_config(store.url, **{"data.max_shard_bytes": 20_000})
    folder = Path(store.root) / layout.incoming_dir("v1")
    folder.mkdir(parents=True)
    (folder / "good.txt").write_text(GOOD)
    (folder / "big.txt").write_text(GOOD * 2)
    size = (folder / "big.txt").stat().st_size
    if not listed_size:  # an object store that does not report sizes
        real = ingest_module.list_shard_sizes
        monkeypatch.setattr(
            ingest_module, "list_shard_sizes", lambda *a: [(url, None) for url, _ in real(*a)]
        )
    with pytest.raises(DropRejected) as info:
        add_version(store, cfg, store.url_of(layout.incoming_dir("v1")), name="v1")
    message = str(info.value)
    assert "(1 problem(s))" in message and "big.txt" in message and "data.max_shard_bytes = 20000" in message
    assert (f"is {size} bytes" if listed_size else "holds more than 20000 bytes") in message
    assert store.exists(layout.quarantine_file("v1", "big.txt"))
    assert store.exists(layout.incoming_file("v1", "good.txt"))
    assert not store.exists(layout.TIMELINE) and not store.exists(layout.TOKENIZER_JSON)


def test_the_default_size_cap_is_the_config_default(tmp_path) -> None:
    store = Store(str(tmp_path / "store"))
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.txt").write_text(GOOD)
    assert [s.name for s in read_drop(store, str(folder), "drop")] == ["a.txt"]
    with pytest.raises(DropRejected, match=r"a.txt: is \d+ bytes, over data.max_shard_bytes = 100 "):
        read_drop(store, str(folder), "drop", max_shard_bytes=100)
    assert DataConfig().max_shard_bytes == 4 << 30


@pytest.mark.parametrize("bad", ["z.txt", "z.jsonl", "z.parquet"])
def test_a_bad_shard_fails_the_ingest_before_anything_is_written(tmp_path, make_config, bad) -> None:
    store = Store(str(tmp_path / "store"))
    folder = tmp_path / "incoming" / "v1"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text(GOOD)  # sorts first
    (folder / bad).write_bytes(b"\xff not text")
    with pytest.raises(ShardError) as info:
        ingest_data(store, make_config(store.url), 1, str(folder))
    assert str(folder / bad) in str(info.value)
    assert list(store.walk_files("")) == [], "no tokenizer, no cache, no blocks, no manifest"


def _mixed_drop(folder: Path, version: int) -> None:
    docs = synthetic_documents(version, 150, seed=0)
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("\n\n".join(docs[:50]) + "\n", encoding="utf-8")
    (folder / "b.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[50:100]))
    pq.write_table(pa.table({"text": docs[100:]}), folder / "c.parquet")


@pytest.fixture
def shard_opens(monkeypatch):
    """How often each file was opened for reading (fsspec, pyarrow's Python files and ``datasets``
    all go through ``open``)."""
    opens: Counter[str] = Counter()
    real_open = builtins.open

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and "r" in mode:
            opens[os.path.realpath(file)] += 1
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return opens


def test_add_version_opens_each_shard_once(tmp_path, make_config, shard_opens) -> None:
    """Version 1 trains the tokenizer and is packed from the one read of each shard."""
    store = Store(str(tmp_path / "store"))
    cfg = make_config(store.url)
    drops = [tmp_path / "drops" / f"v{v}" for v in (1, 2)]
    for version, folder in enumerate(drops, start=1):
        _mixed_drop(folder, version)
    shard_paths = {str(f / n): f for f in drops for n in ("a.txt", "b.jsonl", "c.parquet")}

    for folder in drops:
        record = add_version(store, cfg, str(folder))
    assert record.version == 2
    assert {p: shard_opens[os.path.realpath(p)] for p in shard_paths} == dict.fromkeys(shard_paths, 1)

    # Identical content again: the existing record, after one more read of each shard.
    assert add_version(store, cfg, str(drops[0]), name="v1-again") == load_timeline(store)[0].version(1)
    assert {p: shard_opens[os.path.realpath(p)] for p in shard_paths} == {
        p: 2 if f == drops[0] else 1 for p, f in shard_paths.items()
    }
    (drops[1] / "a.txt").write_text(GOOD)
    with pytest.raises(TimelineError, match="already named 'v2' with other content"):
        add_version(store, cfg, str(drops[1]))


def test_ingest_data_bootstraps_the_tokenizer_once(tmp_path, make_config) -> None:
    store = Store(str(tmp_path / "store"))
    cfg = make_config(store.url)
    drops = [tmp_path / "drops" / f"v{v}" for v in (1, 2)]
    for version, folder in enumerate(drops, start=1):
        _mixed_drop(folder, version)
    first = ingest_data(store, cfg, 1, str(drops[0]))
    tokenizer = store.read_bytes(layout.TOKENIZER_JSON)
    second = ingest_data(store, cfg, 2, str(drops[1]), name="second")
    assert store.read_bytes(layout.TOKENIZER_JSON) == tokenizer, "the tokenizer never changes"
    assert (first.name, second.name) == ("v1", "second")
    assert first.tokenizer_sha256 == second.tokenizer_sha256
    assert load_manifest(store, 2) == second
    assert not store.exists(layout.TIMELINE), "ingest_data writes data, not the timeline"
    assert steps_of(second, cfg) == second.train_blocks // cfg.optimizer.batch_size


def _property_good() -> str:
    """Under 400 bytes of distinct paragraphs, some held out at val_fraction 0.1 (a block of 8 each way)."""
    candidates = [f"pears and plums {i}." for i in range(200)]
    held = [d for d in candidates if is_validation_document(d, 0.1)][:3]
    trained = [d for d in candidates if not is_validation_document(d, 0.1)][:12]
    return "".join(f"{d}\n\n" for d in held + trained)


PROPERTY_GOOD = _property_good()
_drop_numbers = itertools.count()


@pytest.fixture(scope="module")
def property_store(tmp_path_factory):
    """One store and one tokenizer (trained once) for every generated drop."""
    store = Store(str(tmp_path_factory.mktemp("property") / "store"))
    return store, train_tokenizer(synthetic_documents(1, 60, seed=0), vocab_size=300)


_TEXT_PIECES = [
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b" ",
    b"\t",
    b"word",
    b"\xc3\xa9",
    b"\xf0\x9f\x99\x82",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xff",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"{",
    b"}",
    b'"text"',
    b":",
    b"null",
    b'"\\ud800"',
    b"x" * 70,
]
_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_TEXTS = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40),
    st.text(max_size=40),
    st.none(),
    st.text(
        alphabet=st.sampled_from(["a", " ", "\n", "\ud800", "\udfff", "é", "\x00", "\ufeff"]), max_size=12
    ),
    _JSON_VALUES,
)


@st.composite
def _jsonl(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["row"] * 6 + ["value", "junk", "blank"]))
        if kind == "row":
            row = draw(st.dictionaries(st.sampled_from(["id", "meta", "Text"]), _JSON_SCALARS, max_size=2))
            row["text"] = draw(_TEXTS)
            line = json.dumps(row, ensure_ascii=draw(st.booleans()))
        elif kind == "value":
            line = json.dumps(draw(_JSON_VALUES))
        elif kind == "junk":
            line = draw(st.text(max_size=20))
        else:
            line = draw(st.sampled_from(["", "  ", "\r"]))
        lines.append(line.encode("utf-8", "surrogatepass"))
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + draw(st.sampled_from([b"\n", b"\r\n"])).join(lines) + draw(st.sampled_from([b"", b"\n"]))


def _column(draw, kind: str, n: int) -> pa.Array:
    strings = st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=n, max_size=n)
    if kind in ("string", "large_string"):
        return pa.array(draw(strings), pa.string() if kind == "string" else pa.large_string())
    if kind == "dictionary":
        return pa.array(draw(strings), pa.string()).dictionary_encode()
    if kind == "invalid utf-8":
        raw = draw(st.lists(st.one_of(st.none(), st.binary(max_size=8)), min_size=n, max_size=n))
        return pa.array(raw, pa.binary()).view(pa.string())
    if kind == "int":
        return pa.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), pa.int64())
    if kind == "float":
        return pa.array(draw(st.lists(st.floats(), min_size=n, max_size=n)), pa.float64())
    if kind == "list":
        return pa.array(draw(st.lists(st.lists(st.text(max_size=3), max_size=2), min_size=n, max_size=n)))
    return pa.nulls(n)


@st.composite
def _parquet(draw) -> bytes:
    n = draw(st.integers(0, 6))
    names = draw(
        st.lists(st.sampled_from(["text", "text", "body", "id", "TEXT"]), min_size=1, max_size=3, unique=True)
    )
    kinds = [
        "string",
        "string",
        "large_string",
        "dictionary",
        "invalid utf-8",
        "int",
        "float",
        "list",
        "null",
    ]
    table = pa.table({name: _column(draw, draw(st.sampled_from(kinds)), n) for name in names})
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        row_group_size=draw(st.integers(1, 4)),
        compression=draw(st.sampled_from(["none", "snappy", "zstd"])),
    )
    raw = buf.getvalue()
    damage = draw(st.sampled_from(["none"] * 4 + ["truncate", "flip"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    return raw


_SHARDS = st.one_of(
    st.tuples(st.sampled_from([".txt", ".jsonl", ".parquet"]), st.binary(max_size=200)),
    st.tuples(st.just(".txt"), st.text(max_size=300).map(str.encode)),
    st.tuples(
        st.sampled_from([".txt", ".jsonl"]),
        st.lists(st.sampled_from(_TEXT_PIECES), max_size=30).map(b"".join),
    ),
    st.tuples(st.just(".jsonl"), _jsonl()),
    st.tuples(st.just(".parquet"), _parquet()),
)


@settings(max_examples=600, deadline=None, database=None)
@given(
    shard=_SHARDS, chunk=st.sampled_from([1, 7, 64, 1 << 20]), cap=st.sampled_from([None, None, 400, 2000])
)
def test_any_shard_is_accepted_or_refused_naming_the_file(property_store, shard, chunk, cap) -> None:
    """Random bytes, JSON lines and Parquet tables as a shard of a drop in incoming/: the drop is
    accepted (and packs), or DropRejected names the file and quarantines it; nothing else is raised."""
    store, tok = property_store
    suffix, content = shard
    name = f"d{next(_drop_numbers)}"
    folder = Path(store.local_path(layout.incoming_dir(name)))
    folder.mkdir(parents=True)
    (folder / "good.txt").write_text(PROPERTY_GOOD)
    filename = f"shard{suffix}"
    (folder / filename).write_bytes(content)
    url = store.url_of(layout.incoming_dir(name))
    with (
        mock.patch("os.fsync"),  # not under test, and most of the time on a busy disk
        mock.patch.object(shards_module, "READ_CHUNK", chunk),
        mock.patch.object(shards_module, "MAX_LINE_BYTES", 200),
        mock.patch.object(shards_module, "MAX_DOCUMENT_CHARS", 100),
    ):
        try:
            shards = read_drop(store, url, name, cap)
        except DropRejected as exc:
            message = str(exc)
            event(f"{suffix} refused: {re.sub(r'[0-9]+', 'N', message.split(filename + ': ', 1)[-1])[:30]}")
            assert "(1 problem(s))" in message and filename in message
            assert store.exists(layout.quarantine_file(name, filename))
            assert filename in store.read_text(layout.quarantine_file(name, f"{filename}.reason.txt"))
            assert store.exists(layout.incoming_file(name, "good.txt"))
            return
        event(f"{suffix} accepted")
        manifest = pack_version(store, 1, shards, tok, 8, 0.1, 0, name, url)
    assert [s.name for s in manifest.shards] in (["good.txt", filename], ["good.txt"])
    assert all(s.documents >= 1 for s in manifest.shards)


def test_two_ingests_of_one_name_at_once_give_one_version(ingested_store, tmp_path) -> None:
    """The ingest lease serializes them: one becomes version 3, the other is refused (other content)."""
    from concurrent.futures import ThreadPoolExecutor

    store, cfg = ingested_store
    drops = []
    for i, text in enumerate(("first content of the new drop", "second, different content")):
        folder = tmp_path / f"drop{i}" / "v3"
        folder.mkdir(parents=True)
        (folder / "a.txt").write_text("\n\n".join(f"{text} {n}" for n in range(400)) + "\n")
        drops.append(str(folder))

    def ingest(source: str):
        try:
            return add_version(Store(store.url), cfg, source)  # its own Store: a separate writer
        except TimelineError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(ingest, drops))
    records = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(records) == 1 and records[0].version == 3
    assert len(refused) == 1 and "already named 'v3' with other content" in str(refused[0])
    timeline, _ = load_timeline(store)
    assert [v.name for v in timeline.versions] == ["v1", "v2", "v3"]
    assert load_manifest(store, 3).data_sha256 == records[0].data_sha256
