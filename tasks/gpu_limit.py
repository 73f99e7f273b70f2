"""The server's ``gpu`` global concurrency limit, held with a lease while a segment trains.

Prefect's ``concurrency()`` would do, but for one thing measured on a SQLite server: the slot
increment, coming right after the task run's own state change, is often answered 503 ("database
is locked": the server's deferred transaction meets the writes that state change causes; Prefect
issue #18934), and Prefect's client tries again only after 2 s. That was most of Prefect's time per
version (``bench/server_overhead.py``). Here Prefect's client makes the request over a transport
that tries a 503 again after 0.05, 0.1, 0.2 … s; a full limit (423) is waited on as Prefect does,
for as long as its ``Retry-After`` says; the lease is kept alive by Prefect's own renewal thread
(``prefect.concurrency._leases``, private: what ``concurrency()`` uses in Prefect 3.9; a Prefect
that moves it fails this module's import, and its tests, at once) and given back on exit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.logging import get_logger
from prefect.settings import PREFECT_API_URL

from lrpath_core.config import ServerSettings
from lrpath_core.errors import LrpathError

GPU_SLOT = "gpu"
GPU_LEASE_S = ServerSettings().gpu_lease_s
"""A held slot's lease, renewed while training; the slot of a run whose process died returns after it."""

BUSY_RETRY_DELAYS_S = ServerSettings().gpu_busy_retry_delays_s
"""Waits after a 503 (the server's database was busy), ~3 s in all; then Prefect's client retries."""


class GpuLimitError(LrpathError):
    """The server has no ``gpu`` limit: training would run unlimited."""


class _BusyRetryTransport(httpx.HTTPTransport):
    """Tries a 503 again after ``BUSY_RETRY_DELAYS_S``, below Prefect's client (which waits 2 s)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for delay in [*BUSY_RETRY_DELAYS_S, None]:
            response = super().handle_request(request)
            if response.status_code != httpx.codes.SERVICE_UNAVAILABLE or delay is None:
                return response
            response.close()
            time.sleep(delay)
        raise AssertionError("unreachable")


def _acquire(slots: int) -> UUID:
    """Increment ``gpu`` by ``slots`` under a lease; waits while the limit is full."""
    with get_client(sync_client=True, httpx_settings={"transport": _BusyRetryTransport()}) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[GPU_SLOT], slots=slots, mode="concurrency", lease_duration=GPU_LEASE_S
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != httpx.codes.LOCKED:
                    raise
                # the limit is full: wait as long as the server says, as Prefect's concurrency() does
                time.sleep(float(exc.response.headers.get("Retry-After", 1)))
                continue
            body = response.json()
            if not body.get("limits"):
                raise GpuLimitError(
                    f"the Prefect server at {PREFECT_API_URL.value()} has no '{GPU_SLOT}' concurrency "
                    "limit, so training would run unlimited: run `lrpath server up` (it creates it) or "
                    f"`prefect gcl create {GPU_SLOT} --limit N`"
                )
            return UUID(body["lease_id"])


def _release(lease_id: UUID) -> None:
    with get_client(sync_client=True) as client:
        client.release_concurrency_slots_with_lease(lease_id=lease_id)


@contextlib.contextmanager
def gpu_limit(slots: int = 1) -> Iterator[None]:
    """Hold ``slots`` slots of the server's ``gpu`` limit while training.

    On the ephemeral API (no ``PREFECT_API_URL``: the demo, tests) there is no limit to hold. On a
    server the limit must exist (``lrpath server up`` creates it): a missing one is an error, not
    "no limit". If the lease cannot be renewed, the training is cancelled, as with Prefect's
    ``concurrency(strict=True)``.
    """
    if not PREFECT_API_URL.value():
        yield
        return
    started = time.perf_counter()
    lease_id = _acquire(slots)
    get_logger("lrpath.gpu_limit").debug(
        "holds %d '%s' slot(s) after %.2f s", slots, GPU_SLOT, time.perf_counter() - started
    )
    try:
        with maintain_concurrency_lease(lease_id, GPU_LEASE_S, raise_on_lease_renewal_failure=True):
            yield
    finally:
        _release(lease_id)
