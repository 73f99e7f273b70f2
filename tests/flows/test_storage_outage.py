"""The S3 store goes away mid-run: during a checkpoint write (and stays away), during publish (and comes back).

moto keeps its objects in memory, so the outage is a :class:`servers.TcpProxy` between the store
and moto that is cut and restored; the tests look at the bucket directly through moto, not
through the proxy. Retry delays are shortened on the flow's tasks and botocore does not retry
(``AWS_MAX_ATTEMPTS=1``), so that every failed try takes milliseconds.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from fsspec.exceptions import FSTimeoutError
from prefect import Task
from prefect.states import Failed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402

import flows.update_version as update_version_flow  # noqa: E402
import flows.version_update as version_update_flow  # noqa: E402
from flows.version_update import version_update  # noqa: E402
from lrpath_core import pipeline  # noqa: E402
from lrpath_core.checkpoint import CheckpointError  # noqa: E402
from lrpath_core.incoming import stage_incoming  # noqa: E402
from lrpath_core.layout import MODEL_INDEX, MODEL_STAGING  # noqa: E402
from lrpath_core.model_index import read_index  # noqa: E402
from lrpath_core.publish import PublishError  # noqa: E402
from lrpath_core.published import verify_published  # noqa: E402
from lrpath_core.segment import SegmentError  # noqa: E402
from lrpath_core.storage import Store, StoreError  # noqa: E402
from lrpath_core.timeline import TimelineError  # noqa: E402
from lrpath_core.timeline_store import require_timeline, save_config  # noqa: E402
from lrpath_core.tokenizer import TokenizerError  # noqa: E402
from tasks.retry import (  # noqa: E402
    STORAGE_RETRIES,
    is_transient_storage_error,
    retry_on_storage_error,
    store_unreachable_is_store_error,
)


def counted(fn, tries: list[int]):
    """``fn`` that appends to ``tries`` on every call (each call is one try of a task)."""

    def wrapper(*args, **kwargs):
        tries.append(1)
        return fn(*args, **kwargs)

    return wrapper


OUTAGE_ERRORS = [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ConnectionClosedError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientPayloadError("response payload is not completed"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    FSTimeoutError(),
]
NOT_TRANSIENT = [
    ValueError("a bug"),
    KeyError("model.safetensors"),
    FileNotFoundError(2, "no such object"),
    PermissionError(13, "access denied"),
    ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject"),
    CheckpointError("checkpoint is corrupt"),
    TokenizerError("no tokenizer"),
    SegmentError("loss became nan"),
    TimelineError("no fork checkpoint"),
    PublishError("not the described branch"),
]


@pytest.mark.parametrize("exc", OUTAGE_ERRORS, ids=lambda e: type(e).__name__)
def test_outage_errors_are_retried_and_named_as_an_unreachable_store(exc):
    assert retry_on_storage_error(None, None, Failed(data=exc))
    with pytest.raises(StoreError, match=r"^store s3://b/p is unreachable while writing x: ") as wrapped:
        with store_unreachable_is_store_error("s3://b/p", "writing x"):
            raise exc
    assert wrapped.value.__cause__ is exc
    assert is_transient_storage_error(wrapped.value)


@pytest.mark.parametrize("exc", NOT_TRANSIENT, ids=lambda e: type(e).__name__)
def test_bugs_bad_data_and_missing_objects_are_not_retried_nor_wrapped(exc):
    assert not retry_on_storage_error(None, None, Failed(data=exc))
    with pytest.raises(type(exc)) as raised:
        with store_unreachable_is_store_error("s3://b/p", "writing x"):
            raise exc
    assert raised.value is exc


@pytest.mark.parametrize("exc", [StoreError("store s3://b/p is unreachable"), OSError(5, "I/O error")])
def test_other_storage_errors_are_retried_as_before(exc):
    assert retry_on_storage_error(None, None, Failed(data=exc))


SHORT_DELAYS = [0.5, 1.0, 1.5]
"""Seconds between tries in these tests: ~3 s in all, longer than the publish outage below."""
OUTAGE_S = 1.2


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


def test_proxy_cut_refuses_new_and_resets_open_connections_then_restore_serves_again():
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) as echo:
        echo.daemon_threads = True
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        with servers.TcpProxy(*echo.server_address) as proxy:
            port = proxy.port
            live = socket.create_connection(("127.0.0.1", port), timeout=5)
            live.sendall(b"ping")
            assert live.recv(4) == b"ping"
            proxy.cut()
            with pytest.raises(ConnectionResetError):
                live.recv(1)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5)
            proxy.restore()
            assert proxy.port == port and proxy.endpoint == f"http://127.0.0.1:{port}"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as again:
                again.sendall(b"pong")
                assert again.recv(4) == b"pong"
            live.close()
        echo.shutdown()


@pytest.fixture(scope="module")
def moto_endpoint() -> str:
    with servers.moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def outage_store(moto_endpoint, monkeypatch, synthetic_sources, make_config):
    """``(store, proxy, bucket)``: a store on a fresh bucket behind a proxy, with version 1 staged."""
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    servers.create_bucket(moto_endpoint, bucket)
    with servers.TcpProxy.to(moto_endpoint) as proxy:
        for key, value in {**servers.s3_env(proxy.endpoint), **servers.fail_fast_env()}.items():
            monkeypatch.setenv(key, value)
        for module in (version_update_flow, update_version_flow):
            for value in vars(module).values():
                if isinstance(value, Task) and value.retries:
                    monkeypatch.setattr(value, "retry_delay_seconds", SHORT_DELAYS)
        # the per-version subflow's own retry would run every task's tries twice: counted here once
        monkeypatch.setattr(update_version_flow.update_version, "retries", 0)
        store = Store(f"s3://{bucket}/timeline")
        save_config(store, make_config(store.url))
        stage_incoming(store, synthetic_sources[0])
        yield store, proxy, bucket


def objects(endpoint: str, bucket: str) -> dict[str, str]:
    """Every object in ``bucket`` as key → ETag, read from moto directly (never through the proxy)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=servers.TEST_KEY,
        aws_secret_access_key=servers.TEST_KEY,
        region_name=servers.REGION,
    )
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return found


def kept(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Keys of ``before`` that ``after`` lost or changed (empty: nothing stored was deleted or overwritten)."""
    return sorted(k for k, etag in before.items() if after.get(k) != etag)


@pytest.mark.server
@pytest.mark.slow
def test_outage_during_a_checkpoint_write_fails_clearly_then_a_rerun_completes(
    outage_store, moto_endpoint, monkeypatch
):
    store, proxy, bucket = outage_store
    before_run = objects(moto_endpoint, bucket)
    at_cut: dict[str, str] = {}
    checkpoint_files: list[str] = []
    put_file = Store.put_file

    def put_file_then_cut(self: Store, local_path: str, rel: str) -> None:
        if rel.startswith("checkpoints/"):
            checkpoint_files.append(rel)
            if len(checkpoint_files) == 2:  # the first file of the first checkpoint is stored: cut
                at_cut.update(objects(moto_endpoint, bucket))
                proxy.cut()
        put_file(self, local_path, rel)

    tries: list[int] = []
    monkeypatch.setattr(Store, "put_file", put_file_then_cut)
    monkeypatch.setattr(pipeline, "extend_main", counted(pipeline.extend_main, tries))  # the task imports it

    with pytest.raises(StoreError) as failed:
        version_update(store=store.url)

    message = str(failed.value)
    assert f"store {store.url} is unreachable while training the main path of version 1" in message
    assert f"(try {STORAGE_RETRIES + 1} of {STORAGE_RETRIES + 1})" in message
    assert len(tries) == STORAGE_RETRIES + 1  # the segment was retried, then the task gave up
    assert checkpoint_files[0].endswith("/config.json")
    # with the store reachable again, nothing of the failed run lingers on and writes: what is
    # stored now is exactly what was stored when the outage began
    proxy.restore()
    time.sleep(2)
    after_failure = objects(moto_endpoint, bucket)
    assert after_failure == at_cut  # the failed tries neither removed, changed nor added anything
    assert kept(before_run, after_failure) == []
    assert f"timeline/{MODEL_INDEX}" not in after_failure  # no version, half or whole, is published
    half = checkpoint_files[0].rsplit("/", 1)[0]
    assert f"timeline/{half}/config.json" in after_failure
    assert f"timeline/{half}/manifest.json" not in after_failure

    result = version_update(store=store.url)

    assert result["released"] == [1]
    assert [r.revision for r in read_index(store).revisions(1)] == [1]
    verify_published(store, 1, 1)
    assert require_timeline(store).version(1).status == "released"
    final = objects(moto_endpoint, bucket)
    assert kept(before_run, final) == []
    stored_data = {k: e for k, e in at_cut.items() if k.startswith(("timeline/data/", "timeline/tokenizer/"))}
    assert stored_data and kept(stored_data, final) == []
    assert not any(k.startswith(f"timeline/{MODEL_STAGING}/") for k in final)


@pytest.mark.server
@pytest.mark.slow
def test_outage_during_publish_is_ridden_out_by_the_retries(outage_store, moto_endpoint, monkeypatch):
    store, proxy, bucket = outage_store
    before_run = objects(moto_endpoint, bucket)
    copy_object = Store.copy
    outage: list[str] = []

    def end_outage() -> None:
        proxy.restore()
        outage.append("restored")

    restorer = threading.Timer(OUTAGE_S, end_outage)

    def copy_then_cut(store_: Store, src_rel: str, dst_rel: str) -> None:
        copy_object(store_, src_rel, dst_rel)
        if not outage:  # the first file is staged: cut, and end the outage a little later
            outage.append("cut")
            proxy.cut()
            restorer.start()

    tries: list[int] = []
    monkeypatch.setattr(Store, "copy", copy_then_cut)
    monkeypatch.setattr(pipeline, "publish_release", counted(pipeline.publish_release, tries))
    try:
        result = version_update(store=store.url)
    finally:
        restorer.cancel()
        proxy.restore()

    assert outage == ["cut", "restored"]  # the outage happened, and ended, during the run
    assert len(tries) >= 2  # the publish task failed during the outage and was tried again
    assert result["released"] == [1]
    index = read_index(store)
    assert sorted(index.versions) == [1]
    assert [r.revision for r in index.revisions(1)] == [1]
    verify_published(store, 1, 1)
    final = objects(moto_endpoint, bucket)
    assert kept(before_run, final) == []
    leftovers = sorted(k for k in final if k.startswith(f"timeline/{MODEL_STAGING}/"))
    assert not leftovers, f"the failed publish try left {leftovers}"
