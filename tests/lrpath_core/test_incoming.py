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
    url = stage_incoming(store, str(source)).url
    assert url == store.url_of(layout.incoming_dir("mydata"))
    assert store.ls(layout.incoming_dir("mydata")) == ["_READY", "a.txt", "b.jsonl"]
    assert store.read_text(layout.incoming_file("mydata", layout.READY_MARKER)) == "a.txt\nb.jsonl\n"
    assert ready_folders(store) == ["mydata"]
    again = stage_incoming(store, str(source))
    assert again.url == url and again.already_staged, "a ready drop is not copied again"
    (source / "a.txt").write_text("changed\n")
    with pytest.raises(StoreError, match="already holds other content under the name 'mydata'") as refused:
        stage_incoming(store, str(source))
    assert again.data_sha256[:16] in str(refused.value)
    assert store.read_text(layout.incoming_file("mydata", "a.txt")) == '{"text": "x"}\n'
    with pytest.raises(StoreError, match="holds no .txt, .jsonl or .parquet shards"):
        stage_incoming(store, str(tmp_path / "store"))
    with pytest.raises(StoreError, match="is not a folder"):
        stage_incoming(store, str(source / "a.txt"))


@pytest.mark.parametrize("name", ["../models/v1/r1", "../../x", "a/b", ".", "..", "v 1"])
def test_a_drop_name_that_could_escape_is_refused_before_anything_is_written(tmp_path, store, name) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.txt").write_text("some words\n")
    with pytest.raises(layout.BadNameError, match="is not allowed"):
        stage_incoming(store, str(source), name)
    assert not (tmp_path / "store").exists() or list((tmp_path / "store").rglob("*")) == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "models").exists()


def test_every_file_not_staged_is_named_with_its_reason(tmp_path, store) -> None:
    source = tmp_path / "drop"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("first words\n")
    (source / "copy.txt").write_text("first words\n")
    (source / "b.jsonl").write_text('{"text": "first words"}\n')
    (source / "notes.md").write_text("# readme\n")
    (tmp_path / "elsewhere.txt").write_text("linked words\n")
    (source / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    drop = stage_incoming(store, str(source))
    assert drop.shards == ["a.txt", "b.jsonl"]
    reasons = dict(line.split(": ", 1) for line in drop.skipped + drop.duplicates)
    assert reasons.keys() == {"link.txt", "notes.md", "sub", "copy.txt"}
    assert "symbolic link" in reasons["link.txt"] and "sub-folder" in reasons["sub"]
    assert reasons["copy.txt"] == "same content as a.txt (stored once)"
    assert store.ls(layout.incoming_dir("drop")) == ["_READY", "a.txt", "b.jsonl"]


def test_a_held_drop_takes_new_files_and_loses_its_hold(tmp_path, store) -> None:
    source = tmp_path / "v2"
    source.mkdir()
    (source / "a.txt").write_text("words\n")
    stage_incoming(store, str(source))
    hold(store, "v2", [])
    (source / "a.txt").write_text("fixed words\n")
    drop = stage_incoming(store, str(source))
    assert not drop.already_staged
    assert store.read_text(layout.incoming_file("v2", "a.txt")) == "fixed words\n"
    assert ready_folders(store) == ["v2"]
