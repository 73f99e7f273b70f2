"""Leases on an object store (moto's S3 server): one holder at a time, stale ones taken over by the server's clock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402

from lrpath_core import lease  # noqa: E402
from lrpath_core.conditional_put import LeaseError, check_conditional_writes  # noqa: E402
from lrpath_core.lease import ObjectLease  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402

pytestmark = pytest.mark.server
BUCKET = "lrpath-lease"


@pytest.fixture(scope="module")
def endpoint():
    with servers.moto_s3_server() as url:
        servers.create_bucket(url, BUCKET)
        yield url


@pytest.fixture
def store(endpoint, monkeypatch, request) -> Store:
    for key, value in servers.s3_env(endpoint).items():
        monkeypatch.setenv(key, value)
    return Store(f"s3://{BUCKET}/{request.node.name}")


HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from lrpath_core.storage import Store
    store, out, hold_s = Store(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    with store.lease("locks/version-update"):
        start = time.time()
        time.sleep(hold_s)
        end = time.time()
    with open(out, "w") as f:
        json.dump([start, end], f)
    """
)


def test_two_processes_never_hold_one_lease_at_once(store, endpoint, tmp_path):
    env = {**servers.s3_env(endpoint), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, store.url, str(tmp_path / f"p{i}.json"), "1.5"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    spans = sorted(json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(3))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans  # each holder started after the previous one let go
    assert not store.exists("locks/version-update")  # released by the last holder


def test_a_live_lease_makes_others_wait_and_names_its_holder(store):
    holder = ObjectLease(store.fs, store.root, "locks/x", store.url, ttl_s=30)
    waiting: list[str] = []
    with holder.hold():
        other = ObjectLease(store.fs, store.root, "locks/x", store.url, ttl_s=30)
        assert not other._try_take()
        waiting.append(other.holder())
    assert "pid" in waiting[0] and holder.owner[:8] in waiting[0]
    with ObjectLease(store.fs, store.root, "locks/x", store.url).hold():
        pass  # free again once released


def test_a_stale_lease_is_taken_over_by_the_servers_clock(store, monkeypatch):
    """A holder that died leaves its lease object; after the TTL (server time) another takes it."""
    dead = ObjectLease(store.fs, store.root, "locks/y", store.url, ttl_s=2)
    assert dead._try_take()  # taken, then never renewed nor released: the process "died"
    fresh = ObjectLease(store.fs, store.root, "locks/y", store.url, ttl_s=2)
    assert not fresh._try_take()  # younger than its TTL: still the dead holder's
    monkeypatch.setattr(lease.time, "time", lambda: 0.0)  # a wrong local clock changes nothing
    time.sleep(3.2)
    assert fresh._try_take()
    assert json.loads(store.fs.cat_file(fresh.path))["owner"] == fresh.owner
    late = ObjectLease(store.fs, store.root, "locks/y", store.url, ttl_s=2)
    assert not late._try_take()  # the takeover was a conditional write: one winner


def test_a_holder_that_loses_its_lease_fails_clearly(store):
    holder = ObjectLease(store.fs, store.root, "locks/z", store.url, ttl_s=0.9)
    with pytest.raises(LeaseError, match="was taken over"), holder.hold():
        store.fs.pipe_file(holder.path, b'{"owner": "someone else"}')  # another writer replaced it
        time.sleep(1.0)
    assert json.loads(store.fs.cat_file(holder.path))["owner"] == "someone else"  # not deleted


class IgnoresConditions:
    """A filesystem that, like a server without conditional writes, accepts every PUT."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def pipe_file(self, path: str, data: bytes, **_: object) -> None:
        self.objects[path] = data

    def rm(self, path: str) -> None:
        self.objects.pop(path, None)


def test_a_server_that_ignores_conditional_writes_is_refused():
    with pytest.raises(LeaseError, match="ignores conditional writes"):
        check_conditional_writes(IgnoresConditions(), "bucket/x", "s3://bucket/x-ignores")


def test_moto_honours_conditional_writes(store):
    check_conditional_writes(store.fs, store.root, store.url)  # no error
