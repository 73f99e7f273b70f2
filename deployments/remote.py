"""Run a deployment on the server (``PREFECT_API_URL``) and follow it to a final state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def run_and_follow(
    deployment: str,
    parameters: dict[str, Any],
    say: Callable[[str], None] = print,
    poll: float = 1.0,
    timeout: float | None = None,
) -> Any:
    """``run_deployment`` of ``FLOW/DEPLOYMENT`` (no waiting), then print each state change.

    Returns the final flow run (its ``state`` has ``type`` and ``message``).
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters=parameters, timeout=0)
    say(f"{deployment}: flow run {run.name} ({run.id})")
    seen = None
    deadline = None if timeout is None else time.time() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            state = run.state
            if state is not None and state.name != seen:
                seen = state.name
                say(f"{run.name}: {state.name}")
            if state is not None and state.type.value in FINAL:
                return run
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"{run.name} is still {seen} after {timeout} s")
            time.sleep(poll)


def failure_line(run: Any) -> str | None:
    """One line for a run that did not complete; ``None`` when it completed."""
    state = run.state
    if state.type.value == "COMPLETED":
        return None
    message = " ".join((state.message or "").split())
    return f"flow run {run.name} {state.name}: {message or 'no message'}"
