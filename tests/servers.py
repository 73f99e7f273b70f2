"""Real servers for tests: moto's S3 server as a subprocess on 127.0.0.1, a TCP proxy to cut, and
a few reads of a real Prefect server's API.

Test files import this as ``servers`` after putting ``tests/`` on ``sys.path`` (pytest runs with
``--import-mode=importlib``, where ``tests.servers`` is not importable). Nothing here changes the
environment: pass :func:`s3_env` to ``monkeypatch.setenv``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, Self, TypeVar

T = TypeVar("T")
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
TEST_KEY = "testing"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_server_executable() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} does not exist: install moto[server] into this environment")
    return path


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint + "/", timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def moto_s3_server(
    start_timeout: float = 30.0, attempts: int = 3, check_credentials: bool = False
) -> Iterator[str]:
    """Start ``moto_server`` on a free port of 127.0.0.1, yield its endpoint URL, stop it on exit.

    ``check_credentials`` turns on moto's IAM authentication (``INITIAL_NO_AUTH_ACTION_COUNT=0``):
    then only keys that exist in its IAM are accepted, so wrong credentials are refused.
    """
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else None
    executable = moto_server_executable()
    with tempfile.TemporaryFile() as log:
        for _ in range(attempts):
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [executable, "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            deadline = time.monotonic() + start_timeout
            while proc.poll() is None and time.monotonic() < deadline and not _answers(endpoint):
                time.sleep(0.1)
            if proc.poll() is None and _answers(endpoint):
                break
            _stop(proc)  # the port was taken meanwhile, or the server did not come up: try another
        else:
            log.seek(0)
            output = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(
                f"moto_server did not answer on 127.0.0.1 after {attempts} attempts:\n{output}"
            )
        try:
            yield endpoint
        finally:
            _stop(proc)


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for boto3/s3fs and ``lrpath_core.storage`` to talk to ``endpoint``."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "LRPATH_S3_ENDPOINT": endpoint,
    }


def create_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=TEST_KEY,
        aws_secret_access_key=TEST_KEY,
        region_name=REGION,
    )
    client.create_bucket(Bucket=name)


def fail_fast_env() -> dict[str, str]:
    """botocore without its own retries, so that a test of an outage sees the failure in seconds.

    (s3fs retries on top of botocore: ``S3FileSystem.retries``, 5 tries over ~2 s for timeouts and
    dropped connections; a refused connection is not retried there.)
    """
    return {"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 to ``target_host:target_port`` whose link can be cut and restored.

    moto keeps its objects in memory, so stopping the server would lose them: an outage is
    simulated here instead. :meth:`cut` stops listening (new connections are refused) and resets
    every open connection (clients see ``ConnectionResetError``); :meth:`restore` listens on the
    same port again. Point the store's endpoint at :attr:`endpoint`; the server stays reachable
    directly, so a test can look at what is stored while the store is "down".
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.port = 0
        self.restore()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    @classmethod
    def to(cls, endpoint: str) -> TcpProxy:
        """A proxy to an ``http://host:port`` endpoint."""
        host, port = endpoint.split("://", 1)[-1].rstrip("/").rsplit(":", 1)
        return cls(host, int(port))

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def restore(self) -> None:
        """Listen again (on the same port after the first time); no-op when already listening."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._acceptor = threading.Thread(
                target=self._accept, args=(listener,), name=f"proxy-{self.port}", daemon=True
            )
            self._acceptor.start()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones; no-op when already cut."""
        with self._lock:
            listener, self._listener = self._listener, None
            acceptor, self._acceptor = self._acceptor, None
            links, self._links = self._links, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        for link in links:
            link.abort()
        if acceptor is not None:
            acceptor.join(timeout=5)

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was shut: cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _Link(client).abort()
                continue
            link = _Link(client, upstream)
            with self._lock:
                if self._listener is not listener:  # cut while this connection was being set up
                    link.abort()
                    return
                self._links.add(link)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, src, dst), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            if not link.aborted:
                dst.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError:
            link.abort()  # a reset on either side: take the whole link down
        if link.one_side_done():
            link.close()
            with self._lock:
                self._links.discard(link)


class _Link:
    """A client connection and its upstream connection; closed once both directions are done."""

    def __init__(self, *sockets: socket.socket) -> None:
        self.sockets = sockets
        self.aborted = False
        self._open_sides = 2
        self._lock = threading.Lock()

    def one_side_done(self) -> bool:
        with self._lock:
            self._open_sides -= 1
            return self._open_sides == 0

    def abort(self) -> None:
        """Reset both connections: SO_LINGER 0 makes close() send RST, not FIN; SHUT_RD wakes readers."""
        self.aborted = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
            sock.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def flow_runs(
    api_url: str, *, deployment: str | None = None, flow: str | None = None
) -> list[dict[str, Any]]:
    """Flow runs of a deployment or a flow (by name) from a Prefect server's REST API, oldest first."""
    from deployments.api import call

    body: dict[str, Any] = {"sort": "EXPECTED_START_TIME_ASC"}
    if deployment:
        body["deployments"] = {"name": {"any_": [deployment]}}
    if flow:
        body["flows"] = {"name": {"any_": [flow]}}
    return call(api_url, "POST", "/flow_runs/filter", body)[1]


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    show: Callable[[], object] | None = None,
    every: float = 0.5,
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and ``show()``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            seen = show() if show is not None else found
            raise AssertionError(f"not within {timeout:g} s: {what} (seen: {seen!r})")
        time.sleep(every)
