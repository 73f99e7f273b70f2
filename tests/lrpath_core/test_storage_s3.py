from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402

from lrpath_core.storage import StaleStateError, Store, StoreError  # noqa: E402

pytestmark = pytest.mark.server

BUCKET = "lrpath-storage"


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    with servers.moto_s3_server() as endpoint:
        servers.create_bucket(endpoint, BUCKET)
        yield endpoint


@pytest.fixture
def s3_store(s3_endpoint, monkeypatch) -> Store:
    for name, value in servers.s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return Store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")


def test_json_round_trip_on_s3(s3_store):
    s3_store.check_reachable()
    assert not s3_store.exists("state/a.json")
    s3_store.write_json("state/a.json", {"x": 1})
    s3_store.write_json("state/a.json", {"x": 2})
    assert s3_store.read_json("state/a.json") == {"x": 2}
    assert s3_store.ls("state") == ["a.json"]
    assert list(s3_store.walk_files("")) == ["state/a.json"]
    with pytest.raises(StoreError, match="nope.json does not exist"):
        s3_store.read_json("nope.json")


def test_stale_writer_is_refused_on_s3(s3_store):
    state, gen = s3_store.read_json_generation("timeline.json")
    assert state is None and gen == 0
    assert s3_store.write_json_checked("timeline.json", {"v": 1}, gen) == 1
    with pytest.raises(StaleStateError, match="generation 1, this writer holds 0"):
        s3_store.write_json_checked("timeline.json", {"v": "stale"}, 0)
    assert s3_store.read_json("timeline.json") == {"v": 1, "generation": 1}
    other = Store(s3_store.url)
    assert other.read_json_generation("timeline.json") == ({"v": 1, "generation": 1}, 1)


def test_listing_put_get_and_remove_on_s3(s3_store, tmp_path):
    local = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 4096
    local.write_bytes(payload)
    s3_store.put_file(str(local), "run/a/blob.bin")
    s3_store.write_text("run/a/b/c.txt", "c")
    s3_store.write_text("run/top.txt", "t")
    assert s3_store.ls("run") == ["a", "top.txt"]
    assert s3_store.ls("run/a") == ["b", "blob.bin"]
    assert s3_store.ls("missing") == []
    assert list(s3_store.walk_files("run")) == ["a/b/c.txt", "a/blob.bin", "top.txt"]
    assert list(s3_store.walk_files("missing")) == []
    assert s3_store.url_of("run", "a") == f"{s3_store.url}/run/a"

    back = tmp_path / "down" / "blob.bin"
    s3_store.get_file("run/a/blob.bin", str(back))
    assert back.read_bytes() == payload
    with s3_store.open_read("run/a/blob.bin") as f:
        assert f.read(4) == payload[:4]
    with pytest.raises(StoreError, match="does not exist"):
        s3_store.get_file("run/nope.bin", str(tmp_path / "nope.bin"))

    s3_store.remove("run/a", recursive=True)
    assert list(s3_store.walk_files("run")) == ["top.txt"]
    assert not s3_store.exists("run/a/blob.bin")
    s3_store.remove("run/never-there.txt")


def test_lock_is_a_no_op_on_s3_and_generation_check_still_guards(s3_store):
    with s3_store.lock("counter.json"):
        state, gen = s3_store.read_json_generation("counter.json")
        s3_store.write_json_checked("counter.json", {"count": 1}, gen)
    assert not s3_store.exists("counter.json.lock")


def test_missing_bucket_is_a_clear_error(s3_endpoint, monkeypatch):
    for name, value in servers.s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreError, match="does not exist \\(create the bucket first\\)"):
        Store("s3://no-such-bucket-lrpath/prefix").check_reachable()


def test_unreachable_endpoint_is_a_clear_error(monkeypatch):
    closed = f"http://127.0.0.1:{servers.free_port()}"
    for name, value in servers.s3_env(closed).items():
        monkeypatch.setenv(name, value)
    # one attempt: botocore's default retries take ~5 s to give up on a refused connection
    fast = {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 2}}
    with pytest.raises(StoreError, match="is unreachable: .*check the URL, endpoint and network") as info:
        Store(f"s3://{BUCKET}/x", fast).check_reachable()
    assert closed.split("//")[1] in str(info.value)


def test_generation_check_refuses_a_writer_that_lands_between_check_and_write(s3_store, monkeypatch):
    s3_store.write_json_checked("timeline.json", {"v": "first"}, 0)
    other = Store(s3_store.url)
    real = Store.read_json_generation
    raced: list[bool] = []

    def read_then_other_writes(self: Store, rel: str):
        result = real(self, rel)
        if self is s3_store and not raced:
            raced.append(True)
            other.write_json_checked(rel, {"v": "other"}, 1)
        return result

    monkeypatch.setattr(Store, "read_json_generation", read_then_other_writes)
    with pytest.raises(StaleStateError):
        s3_store.write_json_checked("timeline.json", {"v": "mine"}, 1)
    assert s3_store.read_json("timeline.json")["v"] == "other"


def test_wrong_credentials_are_refused_clearly_and_the_secret_is_not_repeated(monkeypatch):
    with servers.moto_s3_server(check_credentials=True) as endpoint:
        for key, value in servers.s3_env(endpoint).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-7f3a")
        with pytest.raises(StoreError, match="refused access: check the credentials") as info:
            Store("s3://some-bucket/prefix").check_reachable()
        assert "wrong-secret-value-7f3a" not in str(info.value)
