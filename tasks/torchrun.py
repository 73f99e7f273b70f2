"""A training segment under ``torchrun`` from a Prefect task: launched, followed, and stopped as a whole.

``torchrun --standalone --nproc-per-node N -m lrpath_core.train --spec …`` runs in its own
session (process group) with ``CUDA_VISIBLE_DEVICES`` set to the task's device slots. Rank 0's
progress lines feed the task's progress artifact; every other line goes to the task's log, and
the last ones into the error when torchrun exits non-zero. On any exception in the task (a
cancellation, a timeout, a Ctrl-C) and on SIGTERM of the flow run's process the whole group is
stopped: SIGTERM, then SIGKILL after :data:`KILL_GRACE_S`. torchrun starts each rank in a session
of its own, so the ranks are signalled one by one too, and each rank also exits by itself when
the flow run's process is gone (``--watch-pid``, :mod:`lrpath_core.rank_watch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from lrpath_core.devices import DeviceLease
from lrpath_core.errors import LrpathError
from lrpath_core.processes import descendants
from lrpath_core.rank_watch import parse_progress
from lrpath_core.segment import ProgressFn, SegmentResult, SegmentSpec
from lrpath_core.storage import Store

KILL_GRACE_S = 5.0
TAIL_LINES = 40
_ERROR_LINE = re.compile(r"^(\[rank\d+\]:\s*)?[\w.]*(Error|Exception): ")
"""The last line of a rank's traceback (``lrpath_core.segment.SegmentError: …``)."""
_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.Lock()


class TorchrunError(LrpathError):
    """A segment's torchrun exited non-zero; the message names the segment and ends with its log tail."""


def torchrun_command(nproc: int) -> list[str]:
    local = Path(sys.executable).with_name("torchrun")
    launcher = [str(local)] if local.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", "--nproc-per-node", str(nproc), "-m", "lrpath_core.train"]


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


class TorchrunSegment:
    """A :data:`lrpath_core.segment.SegmentRunner` that runs the segment under torchrun on ``lease``."""

    def __init__(self, lease: DeviceLease, strategy: str) -> None:
        self.lease = lease
        self.strategy = strategy

    def __call__(self, store: Store, spec: SegmentSpec, progress: ProgressFn | None) -> SegmentResult:
        spec = spec.model_copy(
            update={"parallel": self.strategy, "device": self.lease.kind, "progress_bar": False}
        )
        with tempfile.TemporaryDirectory(prefix="lrpath-torchrun-") as tmp:
            spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
            spec_path.write_text(spec.model_dump_json())
            command = [
                *torchrun_command(len(self.lease.devices)),
                *("--store", store.url, "--spec", str(spec_path), "--result", str(result_path)),
                *("--threads", str(self.lease.threads), "--progress-lines", "--watch-pid", str(os.getpid())),
            ]
            env = {
                **os.environ,
                "CUDA_VISIBLE_DEVICES": self.lease.cuda_visible(),
                "OMP_NUM_THREADS": str(self.lease.threads),
                "PYTHONUNBUFFERED": "1",
            }
            code, errors, tail = _follow(command, env, progress)
            if code != 0:
                raise TorchrunError(
                    f"segment {spec.run} (steps {spec.start_step}-{spec.end_step}) failed under torchrun "
                    f"on {self.lease.describe()} ({self.strategy}): {_exit_text(code)}; "
                    + "".join(f"{line.strip()}; " for line in errors)
                    + "its last lines:\n"
                    + "\n".join(tail)
                )
            return SegmentResult.model_validate_json(result_path.read_text())


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _follow(
    command: list[str], env: dict[str, str], progress: ProgressFn | None
) -> tuple[int, list[str], list[str]]:
    """Run ``command`` in a new session; progress lines to ``progress``, others to the log.

    Returns the exit code, the ranks' error lines (each distinct one once) and the last lines."""
    log = _logger()
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
    reader.start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    errors: list[str] = []
    try:
        log.info("torchrun started (pid %d): %s", proc.pid, " ".join(command))
        while True:
            try:
                line = lines.get(timeout=0.5)  # short waits: a cancellation or timeout gets in between
            except queue.Empty:
                continue
            if line is None:
                break
            row = parse_progress(line)
            if row is None:
                tail.append(line)
                if _ERROR_LINE.match(line) and line not in errors:
                    errors.append(line)
                log.info("%s", line)
            elif progress is not None:
                progress(*row)
        return proc.wait(), errors[-5:], list(tail)
    except BaseException:
        stop_group(proc)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.pop(proc.pid, None)


def _read_lines(proc: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _signal_all(proc: subprocess.Popen, pids: list[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S, ranks: list[int] | None = None) -> None:
    """SIGTERM torchrun's group and every rank below it; SIGKILL what is left after ``grace``."""
    if ranks is None:
        ranks = descendants(proc.pid)
        _signal_all(proc, ranks, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    _signal_all(proc, [*ranks, *descendants(proc.pid)], signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


def stop_all() -> None:
    """SIGTERM every torchrun this process started, at once; SIGKILL follows in the background."""
    with _LIVE_LOCK:
        running = list(_LIVE.values())
    for proc in running:
        ranks = descendants(proc.pid)
        _signal_all(proc, ranks, signal.SIGTERM)
        threading.Thread(target=stop_group, args=(proc, KILL_GRACE_S, ranks), daemon=True).start()


@contextlib.contextmanager
def stop_torchrun_on_sigterm() -> Iterator[None]:
    """While the block runs, a SIGTERM of this process (a cancelled flow run) first stops every torchrun
    group it started, then goes on to the handler before (Prefect's). Only the main thread can set
    signal handlers; elsewhere this does nothing (the ranks' watchdog still ends them with the process).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: object) -> None:
        stop_all()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
