"""A version subflow ends without waiting for its heartbeat thread.

Prefect 3.9 sends a flow run's heartbeats (which the zombie automation needs: docs/OPERATIONS.md)
from a thread that sleeps in whole seconds, and a sync flow run joins that thread when it ends
(``prefect.flow_engine._send_heartbeats``). So each version subflow waited 0–1 s before its parent
went on: most of Prefect's own time per version (docs/BENCHMARKS.md). Here a subflow does not join
its thread, as Prefect's async engine does not (``join_on_exit=False``): the thread sees the stop
within a second and ends by itself, sending nothing more. A top-level run keeps Prefect's join.

This wraps a private function of Prefect's engine (``prefect>=3.9,<4``); if a Prefect release
removes it, importing this module fails at once, in the flow run and in its test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prefect import flow_engine

_prefect_send_heartbeats = flow_engine._send_heartbeats


@contextlib.contextmanager
def _send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    flow_run = getattr(engine, "flow_run", None)
    subflow = getattr(flow_run, "parent_task_run_id", None) is not None
    with _prefect_send_heartbeats(engine, join_on_exit=join_on_exit and not subflow):
        yield


def install() -> None:
    """Make the flow engine of this process use :func:`_send_heartbeats` (idempotent)."""
    flow_engine._send_heartbeats = _send_heartbeats


def installed() -> bool:
    return flow_engine._send_heartbeats is _send_heartbeats
