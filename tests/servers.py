"""Real servers for tests: moto's S3 server as a subprocess on 127.0.0.1.

Test files import this as ``servers`` after putting ``tests/`` on ``sys.path`` (pytest runs with
``--import-mode=importlib``, where ``tests.servers`` is not importable). Nothing here changes the
environment: pass :func:`s3_env` to ``monkeypatch.setenv``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

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
def moto_s3_server(start_timeout: float = 30.0, attempts: int = 3) -> Iterator[str]:
    """Start ``moto_server`` on a free port of 127.0.0.1, yield its endpoint URL, stop it on exit."""
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
