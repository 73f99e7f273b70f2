"""``lrpath relay``: MinIO-shaped notifications over HTTP announce each drop exactly once."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from flows.relay import Relay, drops_in, make_server, serve_in_thread
from lrpath_core import layout
from lrpath_core.storage import Store

PREFIX = "lrpath-data/team/timeline"


def minio_notification(key: str, event: str = "s3:ObjectCreated:Put", bucket: str = "lrpath-data") -> dict:
    """What MinIO's webhook target POSTs (abridged to the fields the relay reads)."""
    return {
        "EventName": event,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "eventName": event,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key.replace("/", "%2F"), "size": 0},
                },
            }
        ],
    }


def post(url: str, body: bytes, token: str | None = None) -> tuple[int, dict | None]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return response.status, (json.loads(data) if data else None)
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture
def relay_url(tmp_path) -> Iterator[tuple[str, Store, list[tuple[str, str]]]]:
    store = Store(str(tmp_path / "store"))
    emitted: list[tuple[str, str]] = []
    lock = threading.Lock()

    def emit(store_url: str, drop: str) -> None:
        with lock:
            emitted.append((store_url, drop))

    server = make_server(Relay(store, PREFIX, emit=emit), "127.0.0.1", 0, token="s3cret")
    serve_in_thread(server)
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}/", store, emitted
    finally:
        server.shutdown()
        server.server_close()


def test_a_ready_object_announces_its_drop_once_however_often_it_is_notified(relay_url):
    url, store, emitted = relay_url
    body = json.dumps(minio_notification("team/timeline/incoming/v3/_READY")).encode()

    assert post(url, body, "s3cret") == (200, {"announced": ["v3"]})
    assert post(url, body, "s3cret") == (204, None)
    results: list[tuple[int, dict | None]] = []
    threads = [threading.Thread(target=lambda: results.append(post(url, body, "s3cret"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(code for code, _ in results) == [204, 204, 204]
    assert emitted == [(store.url, "v3")]
    assert store.exists(layout.announced_marker("v3"))


def test_other_keys_and_events_are_ignored_and_bad_bodies_refused(relay_url):
    url, store, emitted = relay_url
    ignored = [
        minio_notification("team/timeline/incoming/v3/part-0.txt"),
        minio_notification("team/timeline/incoming/v3/_READY", event="s3:ObjectRemoved:Delete"),
        minio_notification("other/prefix/incoming/v3/_READY"),
        minio_notification("team/timeline/incoming/v3/_READY", bucket="another-bucket"),
        minio_notification("team/timeline/incoming/../_READY"),
        {"EventName": "s3:TestEvent"},
        [1, 2, 3],
    ]
    for notification in ignored:
        assert post(url, json.dumps(notification).encode(), "s3cret") == (204, None)
    assert post(url, b"{not json", "s3cret")[0] == 400
    assert post(url, json.dumps(minio_notification("team/timeline/incoming/v3/_READY")).encode())[0] == 401
    assert emitted == [] and not store.exists(layout.announced_marker("v3"))


def test_aws_shaped_records_and_url_encoded_keys_are_read():
    aws = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "p/incoming/v+1/_READY"}},
            },
            {
                "eventName": "ObjectCreated:Copy",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "p/incoming/v2/_READY"}},
            },
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "p/incoming/v2/_READY"}},
            },
            {"eventName": "ObjectCreated:Put"},
        ]
    }
    assert drops_in(aws, "b/p") == ["v2"], "'v 1' is not a drop name; v2 is listed once"
