import json
import os
import subprocess
import sys

import pytest

from lrpath_core.storage import StaleStateError, Store, StoreError, join


def test_join_keeps_protocol():
    assert join("s3://bucket/pre", "a", "/b/") == "s3://bucket/pre/a/b"
    assert join("/tmp/x/", "y") == "/tmp/x/y"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    store = Store(str(tmp_path))
    store.write_json("state/a.json", {"x": 1})
    store.write_json("state/a.json", {"x": 2})
    assert store.read_json("state/a.json") == {"x": 2}
    assert os.listdir(tmp_path / "state") == ["a.json"]
    assert store.ls("state") == ["a.json"]
    assert list(store.walk_files("")) == ["state/a.json"]


def test_missing_object_error_names_it(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(StoreError, match="nope.json does not exist"):
        store.read_json("nope.json")


def test_stale_writer_is_refused(tmp_path):
    store = Store(str(tmp_path))
    state, gen = store.read_json_generation("timeline.json")
    assert state is None and gen == 0
    assert store.write_json_checked("timeline.json", {"v": 1}, gen) == 1
    with pytest.raises(StaleStateError, match="generation 1, this writer holds 0"):
        store.write_json_checked("timeline.json", {"v": "stale"}, 0)
    assert store.read_json("timeline.json") == {"v": 1, "generation": 1}


BUMP = """
import sys
from lrpath_core.storage import Store
store = Store(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with store.lock("counter.json"):
        state, gen = store.read_json_generation("counter.json")
        store.write_json_checked("counter.json", {"count": (state or {}).get("count", 0) + 1}, gen)
"""


def test_concurrent_writers_never_lose_an_update(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", BUMP, str(tmp_path), "25"]) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert json.loads((tmp_path / "counter.json").read_text())["count"] == 75


def test_empty_store_url_is_a_clear_error():
    with pytest.raises(StoreError, match="store URL is empty"):
        Store("")


def test_a_killed_writes_temporaries_are_removed_and_nothing_else(tmp_path):
    store = Store(str(tmp_path))
    store.write_bytes("data/v1/train.npy", b"complete")
    left = tmp_path / "data" / "v1" / f".val.npy.tmp-{'a' * 32}"
    left.write_bytes(b"half")
    assert store.remove_temporaries("data/v1") == [left.name]
    assert not left.exists()
    assert store.read_bytes("data/v1/train.npy") == b"complete"
    assert store.remove_temporaries("data/v9") == []
