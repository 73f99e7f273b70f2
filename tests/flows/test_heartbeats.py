"""A version subflow with heartbeats on returns to its parent at once, not after its heartbeat
thread's next one-second tick (``flows/heartbeats.py``)."""

from __future__ import annotations

import time

from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows.update_version  # noqa: F401 - installs the subflow heartbeat change, as in a flow run
from flows import heartbeats

SUBFLOWS = 3


@flow
def short_subflow() -> float:
    """Ends 0.1 s after its heartbeat thread's first beat: Prefect's join would wait ~0.9 s."""
    time.sleep(0.1)
    return time.monotonic()


@flow
def parent() -> list[float]:
    waits = []
    for _ in range(SUBFLOWS):
        body_end = short_subflow()
        waits.append(time.monotonic() - body_end)
    return waits


def test_a_subflow_with_heartbeats_returns_without_waiting_for_its_heartbeat_thread():
    assert heartbeats.installed()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        waits = parent()
    # each wait: the subflow's Completed state and its run context's exit (Prefect's join: ~0.9 s)
    assert sum(waits) < 0.4 * SUBFLOWS, waits
