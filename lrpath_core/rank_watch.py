"""What a training process started by a task's torchrun launcher adds: progress lines, a watchdog.

A rank never outlives its launcher: :func:`exit_when_gone` ends the process within a second of
the launcher (the flow run's process) or its direct parent (torchrun's agent) disappearing, even
when they were SIGKILLed and could not stop it themselves.
"""

from __future__ import annotations

import json
import os
import threading
import time

PROGRESS_PREFIX = "LRPATH_PROGRESS "
"""Rank 0's progress lines on stdout: the prefix, then ``{"done", "end", "loss", "lr"}`` as JSON."""
WATCH_INTERVAL_S = 0.5


def print_progress(done: int, end: int, loss: float, lr: float) -> None:
    """A ``ProgressFn`` printing one line per step for the launcher to parse."""
    print(PROGRESS_PREFIX + json.dumps({"done": done, "end": end, "loss": loss, "lr": lr}), flush=True)


def parse_progress(line: str) -> tuple[int, int, float, float] | None:
    """``(done, end, loss, lr)`` of a progress line; None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        row = json.loads(line[len(PROGRESS_PREFIX) :])
        return int(row["done"]), int(row["end"]), float(row["loss"]), float(row["lr"])
    except (ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def exit_when_gone(pid: int) -> threading.Thread:
    """A daemon thread that ends this process (exit code 143) once ``pid`` or the parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while _alive(pid) and os.getppid() == parent:
            time.sleep(WATCH_INTERVAL_S)
        os._exit(143)

    thread = threading.Thread(target=watch, name="lrpath-launcher-watch", daemon=True)
    thread.start()
    return thread
