"""A few calls to a Prefect server's REST API (no Prefect import: ``lrpath server`` stays quick)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from lrpath_core.config import ServerSettings

STORE_VARIABLE = "lrpath_store"
BUSY_RETRIES = ServerSettings().busy_retries


def call(api_url: str, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """``(status, decoded JSON or None)``; 4xx answers are returned, not raised, a 503 (a busy SQLite
    server) is tried again ``ServerSettings.busy_retries`` times, other 5xx answers are raised."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(BUSY_RETRIES + 1):
        request = urllib.request.Request(
            f"{api_url}{path}", data=data, headers={"Content-Type": "application/json"}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            if exc.code == 503 and attempt < BUSY_RETRIES:
                time.sleep(1 + attempt)
                continue
            if exc.code >= 500:
                raise
            return exc.code, None
    raise AssertionError("unreachable")


def healthy(api_url: str) -> bool:
    try:
        return call(api_url, "GET", "/health", timeout=2)[0] == 200
    except OSError:
        return False


def exists(api_url: str, path: str) -> bool:
    return call(api_url, "GET", path)[0] == 200


def ensure_limit(api_url: str, name: str, limit: int) -> bool:
    """The global concurrency limit ``name`` at ``limit``; True when it was created or changed."""
    status, found = call(api_url, "GET", f"/v2/concurrency_limits/{name}")
    if status == 404:
        call(api_url, "POST", "/v2/concurrency_limits/", {"name": name, "limit": limit})
        return True
    if found["limit"] != limit or not found["active"]:
        call(api_url, "PATCH", f"/v2/concurrency_limits/{name}", {"limit": limit, "active": True})
        return True
    return False


def ensure_variable(api_url: str, name: str, value: str) -> bool:
    """The Prefect Variable ``name`` holding ``value``; True when it was created or changed."""
    status, found = call(api_url, "GET", f"/variables/name/{name}")
    if status == 404:
        call(api_url, "POST", "/variables/", {"name": name, "value": value})
        return True
    if found["value"] != value:
        call(api_url, "PATCH", f"/variables/name/{name}", {"value": value})
        return True
    return False


def deployment_names(api_url: str) -> set[str]:
    return {d["name"] for d in call(api_url, "POST", "/deployments/filter", {})[1]}
