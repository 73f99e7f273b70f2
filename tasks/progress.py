"""Training progress in the Prefect UI: one progress artifact per segment, updated in place."""

from __future__ import annotations

import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

MIN_UPDATE_S = 5.0


class SegmentProgress:
    """A ``ProgressFn`` for ``run_segment``: updates the artifact every 2% but at most every
    ``MIN_UPDATE_S`` seconds, and logs every 10%.

    Each update is an API call the server answers with a database write; on a small CPU machine
    the training threads wait for the cores that call takes, so updates are throttled in time.
    """

    def __init__(self, key: str, description: str) -> None:
        self.key = key
        self.description = description
        self.artifact_id = None
        self.last_percent = -1.0
        self.last_log = -10
        self.started = time.perf_counter()
        self.last_update = self.started

    def __call__(self, done: int, end: int, loss: float, lr: float) -> None:
        percent = 100.0 * done / end if end else 100.0
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key=self.key, description=self.description)
            self.last_percent = percent
        elif done == end or (
            percent - self.last_percent >= 2.0 and time.perf_counter() - self.last_update >= MIN_UPDATE_S
        ):
            update_progress_artifact(
                self.artifact_id,
                percent,
                description=f"{self.description} — step {done}/{end}, loss {loss:.3f}",
            )
            self.last_percent = percent
            self.last_update = time.perf_counter()
        if int(percent) // 10 > self.last_log // 10 or done == end:
            self.last_log = int(percent)
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            get_run_logger().info(
                "%s: step %d/%d loss %.4f lr %.2e (%.1f steps/s)", self.key, done, end, loss, lr, rate
            )
