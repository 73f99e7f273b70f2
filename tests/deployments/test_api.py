"""The REST helper's answer to a busy server: a 503 is tried again, other errors are not."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error

import pytest

from deployments import api


class _Handler(http.server.BaseHTTPRequestHandler):
    codes: list[int] = []

    def do_PATCH(self) -> None:  # noqa: N802 - http.server's naming
        code = self.codes.pop(0) if self.codes else 200
        body = json.dumps({"ok": True}).encode() if code == 200 else b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(api.time, "sleep", lambda s: None)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_busy_server_is_tried_again(server):
    """A SQLite server answers 503 while its database is locked (seen in CI right after the workers
    started: ``ensure_limit`` failed the whole module's set-up)."""
    _Handler.codes = [503] * api.BUSY_RETRIES
    assert api.call(server, "PATCH", "/v2/concurrency_limits/gpu", {"limit": 2}) == (200, {"ok": True})


def test_a_server_busy_past_the_retries_or_broken_raises(server):
    _Handler.codes = [503] * (api.BUSY_RETRIES + 1)
    with pytest.raises(urllib.error.HTTPError, match="503"):
        api.call(server, "PATCH", "/x")
    _Handler.codes = [500]
    with pytest.raises(urllib.error.HTTPError, match="500"):
        api.call(server, "PATCH", "/x")
    _Handler.codes = [404]
    assert api.call(server, "PATCH", "/x") == (404, None)
