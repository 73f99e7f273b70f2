"""A drop becomes a version: each shard read once; bad drops named, quarantined with a reason, and held."""

from __future__ import annotations

import builtins
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrpath_core import layout
from lrpath_core.incoming import ready_folders, release_hold
from lrpath_core.ingest import DropRejected, add_version, ingest_data, read_drop, steps_of
from lrpath_core.packing import load_manifest
from lrpath_core.shards import MAX_LINE_BYTES, ShardError
from lrpath_core.storage import Store
from lrpath_core.synthetic import synthetic_documents
from lrpath_core.timeline import TimelineError
from lrpath_core.timeline_store import load_timeline

GOOD = "A well formed entry about apples.\n\nAnother paragraph about pears and plums.\n\n" * 200


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
