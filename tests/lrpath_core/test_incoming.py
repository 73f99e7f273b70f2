from __future__ import annotations

import pytest

from lrpath_core import layout
from lrpath_core.incoming import hold, incoming_name, ready_folders, release_hold, stage_incoming
from lrpath_core.storage import Store, StoreError


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "store"))


def test_ready_folders_are_complete_unheld_and_in_natural_order(store) -> None:
    for name, marker in (
        ("v10", layout.READY_MARKER),
        ("v2", "manifest.json"),
        ("v3", None),
        ("_x", "_READY"),
    ):
        store.write_text(layout.incoming_file(name, "a.txt"), "text\n")
        if marker:
            store.write_text(layout.incoming_file(name, marker), "")
    assert ready_folders(store) == ["v2", "v10"]
    store.write_text(layout.incoming_file("v2", layout.HELD_MARKER), "a.txt: bad\n")
    assert ready_folders(store) == ["v10"]
    release_hold(store, "v2")
    assert ready_folders(store) == ["v2", "v10"]
    with pytest.raises(StoreError, match=r"incoming/v2 is not held: nothing to release"):
        release_hold(store, "v2")


def test_incoming_name_only_for_a_folder_directly_under_incoming(store) -> None:
    assert incoming_name(store, store.url_of(layout.incoming_dir("v1")) + "/") == "v1"
    assert incoming_name(store, store.url_of(layout.incoming_file("v1", "sub"))) is None
    assert incoming_name(store, "/elsewhere/v1") is None


def test_hold_moves_bad_files_with_a_reason_and_marks_the_drop(store) -> None:
    store.write_text(layout.incoming_file("v1", "good.txt"), "fine\n")
    store.write_text(layout.incoming_file("v1", "bad.txt"), "\x00")
    url = hold(store, "v1", [(store.url_of(layout.incoming_file("v1", "bad.txt")), "bad.txt: binary")])
    assert url == store.url_of(layout.quarantine_dir("v1"))
    assert store.exists(layout.quarantine_file("v1", "bad.txt"))
    assert not store.exists(layout.incoming_file("v1", "bad.txt"))
    assert store.read_text(layout.quarantine_file("v1", "bad.txt.reason.txt")) == "bad.txt: binary\n"
    assert store.read_text(layout.incoming_file("v1", layout.HELD_MARKER)) == "bad.txt: bad.txt: binary\n"
    assert store.exists(layout.incoming_file("v1", "good.txt"))


def test_stage_incoming_copies_shards_and_marks_them_ready_last(tmp_path, store) -> None:
    source = tmp_path / "mydata"
    source.mkdir()
    for name in ("b.jsonl", "a.txt", "notes.md", ".hidden.txt"):
        (source / name).write_text('{"text": "x"}\n')
    url = stage_incoming(store, str(source))
    assert url == store.url_of(layout.incoming_dir("mydata"))
    assert store.ls(layout.incoming_dir("mydata")) == ["_READY", "a.txt", "b.jsonl"]
    assert store.read_text(layout.incoming_file("mydata", layout.READY_MARKER)) == "a.txt\nb.jsonl\n"
    assert ready_folders(store) == ["mydata"]
    (source / "a.txt").write_text("changed\n")
    assert stage_incoming(store, str(source)) == url, "a ready drop is not copied again"
    assert store.read_text(layout.incoming_file("mydata", "a.txt")) == '{"text": "x"}\n'
    with pytest.raises(StoreError, match="holds no .txt, .jsonl or .parquet shards"):
        stage_incoming(store, str(tmp_path / "store"))
    with pytest.raises(StoreError, match="is not a folder"):
        stage_incoming(store, str(source / "a.txt"))
