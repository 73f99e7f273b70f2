"""The ``gpu`` limit against a server that answers like Prefect's: a busy database (503) is tried
again within a fraction of a second, a full limit (423) is waited on, a missing limit is an error.

The Prefect API is a local HTTP server here because a real one cannot be made to answer 503 on
demand; ``tests/deployments/test_device_slots.py`` holds the limit on a real server.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from tasks import gpu_limit as gl

LEASE = str(uuid.uuid4())


class _PrefectApi(http.server.BaseHTTPRequestHandler):
    increments: list[tuple[int, dict]] = []
    """What the next increment requests are answered: (status, headers)."""
    limits: list[dict] = [{"id": str(uuid.uuid4()), "name": "gpu", "limit": 1}]
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.calls.append(self.path)
        code, headers, body = 200, {}, {}
        if self.path.endswith("/increment-with-lease"):
            code, headers = self.increments.pop(0) if self.increments else (200, {})
            body = {"lease_id": LEASE, "limits": self.limits} if code == 200 else {"detail": "no"}
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        data = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PrefectApi)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _PrefectApi.calls, _PrefectApi.increments = [], []
    _PrefectApi.limits = [{"id": str(uuid.uuid4()), "name": "gpu", "limit": 1}]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{httpd.server_address[1]}/api"}):
        yield _PrefectApi
    httpd.shutdown()


def increments(api) -> int:
    return sum(path.endswith("/increment-with-lease") for path in api.calls)


def test_a_busy_server_is_tried_again_within_a_second_and_the_lease_is_given_back(api):
    api.increments = [(503, {})] * 3
    started = time.perf_counter()
    with gl.gpu_limit(1):
        held_after = time.perf_counter() - started
        assert increments(api) == 4
        # Prefect's renewal thread renews the lease at once, then every 3/4 of its duration
        deadline = time.monotonic() + 5
        while not any(path.endswith(f"/leases/{LEASE}/renew") for path in api.calls):
            assert time.monotonic() < deadline, api.calls
            time.sleep(0.05)
    # Prefect's own client waits ~2 s after one 503; three here cost 0.05 + 0.1 + 0.2 s
    assert held_after < 1.5
    assert api.calls[-1].endswith("/decrement-with-lease")


def test_a_full_limit_is_waited_on_as_the_server_says(api):
    api.increments = [(423, {"Retry-After": "0.3"})] * 2
    started = time.perf_counter()
    with gl.gpu_limit(1):
        assert time.perf_counter() - started >= 0.6
    assert increments(api) == 3


def test_a_server_busy_past_the_retries_raises(api, monkeypatch):
    monkeypatch.setattr(gl, "BUSY_RETRY_DELAYS_S", [0.01, 0.01])
    api.increments = [(503, {})] * 3
    # then Prefect's client: with no retries of its own it still waits 2 s before it gives up
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
        with pytest.raises(httpx.HTTPStatusError, match="503"), gl.gpu_limit(1):
            pass
    assert increments(api) == 3


def test_a_missing_limit_is_a_user_error_naming_the_fix(api):
    api.limits = []
    with (
        pytest.raises(gl.GpuLimitError, match="no 'gpu' concurrency limit.*lrpath server up"),
        gl.gpu_limit(2),
    ):
        pass


def test_no_server_no_limit():
    with temporary_settings({PREFECT_API_URL: None}), gl.gpu_limit(1):
        pass
