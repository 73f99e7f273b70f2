"""A host's devices as slots: which devices a training segment trains on, and how many CPU threads.

Each device of the host (``cuda:0``, ``cuda:1`` …, or CPU stand-ins ``cpu:0``, ``cpu:1`` that
split the cores) is one slot; a segment takes ``nproc`` of them and trains on exactly those.

A slot is an exclusive ``flock`` on ``<lock_dir>/<device>.lock``, one folder per host. Devices
are local resources of one host, so the lock is a local one: the kernel drops it the moment its
holder dies (SIGKILL, OOM, a cancelled flow run), every process of the host respects it whether
it runs under a Prefect worker, a plain ``lrpath`` command or the ephemeral API, and it needs no
server round trip nor a per-host limit registered on the server (global concurrency limits named
per host and device would leak slots when a process is killed and must be created for every
host). The server-wide ``gpu`` limit stays the cap on devices training at once across all
workers (``lrpath server up`` sets it to workers × devices); the per-host lock says *which*.

``flock`` locks belong to an open file, so two threads of one process that each open the file
exclude each other too (the branch and the main tail of one flow run are threads).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lrpath_core.config import ComputeConfig, ConfigError
from lrpath_core.segment import SegmentError

if TYPE_CHECKING:  # torch is imported where a device is looked at: the flow modules import this one
    import torch

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
WAIT_POLL_S = 0.3


def host_devices(compute: ComputeConfig) -> list[str]:
    """This host's slots: ``compute.devices`` (env ``LRPATH_DEVICES`` via ``effective()``), else every
    visible CUDA device, else one CPU slot holding all cores."""
    if compute.devices and compute.devices.strip():
        names = [_normalise(part) for part in compute.devices.split(",") if part.strip()]
        if len(set(names)) != len(names):
            raise ConfigError(f"compute.devices {compute.devices!r} names a device twice")
        if len({name.split(":")[0] for name in names}) > 1:
            raise ConfigError(f"compute.devices {compute.devices!r} mixes cpu and cuda slots: use one kind")
        return names
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu:0"]


def _normalise(name: str) -> str:
    match = _DEVICE.match(name.strip())
    if match is None:
        raise ConfigError(
            f"compute.devices: {name.strip()!r} is not a device; write cuda:N or cpu:N, comma-separated "
            "(LRPATH_DEVICES=cuda:0,cuda:1)"
        )
    return f"{match.group(1)}:{match.group(2) or 0}"


def host_cores() -> int:
    """The cores the slots share: ``OMP_NUM_THREADS`` when set (an explicit cap), else this process's CPUs."""
    with contextlib.suppress(ValueError):
        cap = int(os.environ.get("OMP_NUM_THREADS", ""))
        if cap >= 1:
            return cap
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_slot(devices: list[str]) -> int:
    """The host's cores split evenly over its slots (at least one thread each)."""
    return max(1, host_cores() // len(devices))


def lock_dir(compute: ComputeConfig) -> Path:
    return Path(compute.lock_dir or os.path.join(tempfile.gettempdir(), "lrpath-devices"))


@dataclass
class DeviceLease:
    """The slots one segment holds: the devices it trains on and the CPU threads of each process."""

    devices: list[str]
    threads: int
    _files: list = field(default_factory=list, repr=False)

    @property
    def kind(self) -> str:
        return self.devices[0].split(":")[0]

    def torch_device(self) -> torch.device:
        import torch

        kind, index = self.devices[0].split(":")
        return torch.device("cuda", int(index)) if kind == "cuda" else torch.device("cpu")

    def cuda_visible(self) -> str:
        """``CUDA_VISIBLE_DEVICES`` of a subprocess on these slots (empty on CPU: no GPU at all)."""
        return ",".join(d.split(":")[1] for d in self.devices) if self.kind == "cuda" else ""

    def describe(self) -> str:
        return ",".join(self.devices)


@contextlib.contextmanager
def hold_devices(
    compute: ComputeConfig,
    count: int,
    on_wait: Callable[[list[str]], None] | None = None,
    holder: str = "",
) -> Iterator[DeviceLease]:
    """Hold ``count`` free slots of this host until the block ends, waiting while they are busy.

    Takes all ``count`` at once or none (no hold-and-wait, so two segments wanting two slots each
    cannot deadlock). ``on_wait(busy devices)`` is called once if it has to wait.
    """
    devices = host_devices(compute)
    if count > len(devices):
        raise ConfigError(
            f"a segment with nproc {count} needs {count} device slots but this host has {len(devices)} "
            f"({','.join(devices)}): lower compute.nproc (LRPATH_NPROC) or name more slots in "
            "compute.devices (LRPATH_DEVICES=cpu:0,cpu:1 on a CPU host)"
        )
    folder = lock_dir(compute)
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        taken = _try_take(folder, devices, count, holder)
        if taken is not None:
            break
        if not waited and on_wait is not None:
            on_wait(devices)
        waited = True
        time.sleep(WAIT_POLL_S)
    lease = DeviceLease([name for name, _ in taken], threads_per_slot(devices), [f for _, f in taken])
    try:
        yield lease
    finally:
        for handle in lease._files:
            handle.close()  # closing the file drops its flock


def _try_take(folder: Path, devices: list[str], count: int, holder: str) -> list[tuple[str, object]] | None:
    taken: list[tuple[str, object]] = []
    for name in devices:
        handle = open(folder / f"{name.replace(':', '-')}.lock", "a+")  # noqa: SIM115 - closed on release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {holder}\n")
        handle.flush()
        taken.append((name, handle))
        if len(taken) == count:
            return taken
    for _, handle in taken:
        handle.close()
    return None


_THREADS_LOCK = threading.Lock()
_THREAD_HOLDERS: list[int] = []
_THREADS_BEFORE: list[int] = []


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's CPU threads at ``threads`` while the block runs.

    The setting is process-wide: segments that run side by side in threads of one process each
    hold one entry, the process keeps the largest wanted (they hold equal shares of equal slots)
    and gets its own setting back when the last one ends.
    """
    import torch

    with _THREADS_LOCK:
        if not _THREAD_HOLDERS:
            _THREADS_BEFORE[:] = [torch.get_num_threads()]
        _THREAD_HOLDERS.append(threads)
        torch.set_num_threads(max(_THREAD_HOLDERS))
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREAD_HOLDERS.remove(threads)
            torch.set_num_threads(max(_THREAD_HOLDERS) if _THREAD_HOLDERS else _THREADS_BEFORE[0])


_BOUND_DEVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("lrpath_device", default=None)


@contextlib.contextmanager
def bound_device(name: str) -> Iterator[None]:
    """In-process segments of this thread with ``device="auto"`` train on ``name`` (a held slot)."""
    token = _BOUND_DEVICE.set(name)
    try:
        yield
    finally:
        _BOUND_DEVICE.reset(token)


def pick_device(choice: str, local_rank: int) -> torch.device:
    """The device of a segment: the bound slot for ``auto`` in-process, else the spec's choice (a
    torchrun rank takes ``cuda:LOCAL_RANK`` of the devices its launcher made visible)."""
    import torch

    bound = _BOUND_DEVICE.get()
    if choice == "auto" and bound is not None:
        kind, _, index = bound.partition(":")
        if kind == "cpu":
            return torch.device("cpu")
        torch.cuda.set_device(int(index))
        return torch.device("cuda", int(index))
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SegmentError("device 'cuda' was asked for but no CUDA device is visible")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
