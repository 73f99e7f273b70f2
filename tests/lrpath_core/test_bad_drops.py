"""Bad data drops: each bad file is named, quarantined with a reason, and the whole drop is held."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lrpath_core.data import MAX_LINE_BYTES
from lrpath_core.incoming import HELD, INCOMING, QUARANTINE, ready_folders, release_hold
from lrpath_core.pipeline import DropRejected, add_version, load_timeline

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
    folder = Path(store.root) / INCOMING / "v3"
    folder.mkdir(parents=True)
    if kind != "folder with no files":
        (folder / "good.txt").write_text(GOOD)
    bad = write_bad(folder, kind)
    (folder / "_READY").write_text("ready\n")
    before = store.read_bytes("timeline.json")

    with pytest.raises(DropRejected) as info:
        add_version(store, cfg, store.url_of(f"{INCOMING}/v3"), name="v3")
    message = str(info.value)
    assert CASES[kind].lower() in message.lower()
    assert "lrpath release v3" in message
    assert store.read_bytes("timeline.json") == before, "the timeline must not change"
    assert not store.exists("data/v3"), "nothing may be written for a held drop"
    assert store.exists(f"{INCOMING}/v3/{HELD}") and "v3" not in ready_folders(store)
    if bad is not None:
        assert bad in message
        assert store.exists(f"{QUARANTINE}/v3/{bad}") and not store.exists(f"{INCOMING}/v3/{bad}")
        reason = store.read_text(f"{QUARANTINE}/v3/{bad}.reason.txt")
        assert bad in reason and CASES[kind].lower() in reason.lower()
        assert store.exists(f"{INCOMING}/v3/good.txt"), "valid files of the drop are kept, not dropped"

        release_hold(store, "v3")
        assert "v3" in ready_folders(store)
        record = add_version(store, cfg, store.url_of(f"{INCOMING}/v3"), name="v3")
        assert record.version == 3
        timeline, _ = load_timeline(store)
        assert [v.name for v in timeline.versions] == ["v1", "v2", "v3"]
