"""A lease on an object store: one holder at a time across processes and machines.

Object stores have no lock primitive, but S3 (and MinIO, and moto) honour conditional writes:
``If-None-Match: *`` creates an object only when it does not exist, ``If-Match: <etag>``
replaces it only when nobody changed it since. A lease is a small JSON object created with the
first and renewed (heartbeat) with the second while its holder works; its ``LastModified`` is the
server's time of the last renewal. A lease whose last renewal is older than its TTL *by the
server's clock* (read from the ``LastModified`` of a fresh probe object, never the local clock)
was left by a dead holder and is taken over with a conditional write on its ETag, so two
waiters can never both take it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from lrpath_core import layout
from lrpath_core.conditional_put import LeaseError, check_conditional_writes, put_create, put_if_match

LEASE_TTL_S = 60.0
"""A holder renews its lease every third of this; a lease not renewed for this long is stale."""
POLL_S = 1.0

log = logging.getLogger(__name__)


def _info(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        return fs.info(path, refresh=True)
    except FileNotFoundError:
        return None


def _stamp(info: dict[str, Any]) -> float:
    stamp = info.get("LastModified")
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp or 0.0)


def server_now(fs: Any, root: str) -> float:
    """The object store's current time: the ``LastModified`` of a probe object written now."""
    probe = f"{root}/{layout.LOCKS_CLOCK}/{uuid.uuid4().hex}"
    fs.pipe_file(probe, b"")
    try:
        info = _info(fs, probe)
        return _stamp(info) if info else time.time()
    finally:
        with contextlib.suppress(Exception):
            fs.rm(probe)


class ObjectLease:
    """``with ObjectLease(fs, root, layout.UPDATE_LOCK, where).hold(on_wait): ...``"""

    def __init__(self, fs: Any, root: str, rel: str, where: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.fs, self.root, self.rel, self.where, self.ttl_s = fs, root, rel, where, ttl_s
        self.path = f"{root}/{rel}"
        self.owner = uuid.uuid4().hex
        self._etag: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "ttl_s": self.ttl_s}
        ).encode()

    def holder(self) -> str:
        """Who holds the lease now, for a log line."""
        try:
            found = json.loads(self.fs.cat_file(self.path))
            return f"pid {found.get('pid')} on {found.get('host')} (owner {str(found.get('owner'))[:8]})"
        except (FileNotFoundError, ValueError, OSError):
            return "nobody (released meanwhile)"

    def _try_take(self) -> bool:
        if put_create(self.fs, self.path, self._body()):
            return True
        info = _info(self.fs, self.path)
        if info is None:
            return False  # released between our create and our look: try again at once
        age = server_now(self.fs, self.root) - _stamp(info)
        if age < self.ttl_s:
            return False
        log.warning(
            "lease %s/%s is stale (%.0f s since its last renewal): taking it over", self.where, self.rel, age
        )
        return put_if_match(self.fs, self.path, self._body(), info["ETag"])

    @contextlib.contextmanager
    def hold(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        check_conditional_writes(self.fs, self.root, self.where)
        waited = False
        while not self._try_take():
            if not waited and on_wait is not None:
                on_wait(self.holder())
            waited = True
            time.sleep(POLL_S)
        info = _info(self.fs, self.path)
        self._etag = info["ETag"] if info else None
        beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.rel}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            self._stop.set()
            beat.join()
            self._release()
        if self._lost:
            raise LeaseError(self._lost)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self._etag is not None and put_if_match(
                    self.fs, self.path, self._body(), self._etag
                )
            except Exception as exc:  # noqa: BLE001 - an outage: try again at the next beat
                log.warning("could not renew lease %s/%s: %s", self.where, self.rel, exc)
                continue
            if not renewed:
                self._lost = (
                    f"lease {self.where}/{self.rel} was taken over by {self.holder()} while this run held it "
                    "(it could not renew it in time): run the step again"
                )
                log.error("%s", self._lost)
                return
            info = _info(self.fs, self.path)
            self._etag = info["ETag"] if info else None

    def _release(self) -> None:
        """Delete the lease if it is still ours (a taken-over lease belongs to its new holder).

        With the store unreachable (an outage that also ended the work) the lease is left to expire
        after its TTL, and the error that ended the work is the one that surfaces.
        """
        try:
            info = _info(self.fs, self.path)
            if info is not None and info.get("ETag") == self._etag:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self.path)
        except Exception as exc:  # noqa: BLE001 - network stacks raise many types
            log.warning(
                "could not release lease %s/%s (%s): it expires after %.0f s",
                self.where,
                self.rel,
                exc,
                self.ttl_s,
            )
