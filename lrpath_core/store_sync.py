"""How writers of one store coordinate: local locks, leases on every store kind, and JSON state
objects written only if nobody else changed them since they were read (generation + ETag).

A mixin of :class:`lrpath_core.storage.Store`; it uses the store's ``fs``, paths and reads.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from lrpath_core.conditional_put import put_create, put_if_match
from lrpath_core.errors import LrpathError
from lrpath_core.lease import ObjectLease


class StoreError(LrpathError):
    """A store could not be reached or an object in it is missing or unreadable."""


class StaleStateError(StoreError):
    """A JSON state object changed since the writer read it (another writer got there first)."""


class StoreSync:
    fs: Any
    url: str
    root: str
    is_local: bool
    _held_locks: set[str]

    @contextlib.contextmanager
    def lock(self, rel: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """An exclusive lock for read-modify-write of a state object.

        Local stores use ``flock`` on a sidecar file (released by the OS if the process dies).
        Re-entrant within one ``Store``. Object stores have no lock primitive; there the generation
        check plus a conditional PUT in :meth:`write_json_checked` refuse a stale writer.
        """
        if not self.is_local or rel in self._held_locks:
            yield
            return
        import fcntl

        path = self._path(rel) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._held_locks.add(rel)
            try:
                yield
            finally:
                self._held_locks.discard(rel)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def lease(self, rel: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Exclusive use of ``rel`` across processes and machines: ``flock`` locally, a renewed lease
        object (:class:`~lrpath_core.lease.ObjectLease`) on object stores. Re-entrant per ``Store``."""
        if self.is_local:
            with self.lock(rel, on_wait=(lambda: on_wait("another process")) if on_wait else None):
                yield
            return
        if rel in self._held_locks:
            yield
            return
        with ObjectLease(self.fs, self.root, rel, self.url).hold(on_wait):
            self._held_locks.add(rel)
            try:
                yield
            finally:
                self._held_locks.discard(rel)

    def read_json_generation(self, rel: str) -> tuple[Any | None, int]:
        """A JSON state object and its generation (0 when it does not exist yet)."""
        if not self.exists(rel):
            return None, 0
        obj = self.read_json(rel)
        return obj, int(obj.get("generation", 0)) if isinstance(obj, dict) else 0

    def write_json_checked(self, rel: str, obj: dict[str, Any], expected_generation: int) -> int:
        """Write ``obj`` as generation ``expected_generation + 1`` unless someone else wrote first."""
        with self.lock(rel):
            etag = None if self.is_local else self._etag(rel)
            _, current = self.read_json_generation(rel)
            if current != expected_generation:
                raise self._stale(
                    rel, f"it is at generation {current}, this writer holds {expected_generation}"
                )
            new_generation = expected_generation + 1
            payload = (
                json.dumps({**obj, "generation": new_generation}, indent=2, sort_keys=True) + "\n"
            ).encode()
            if self.is_local:
                self.write_bytes(rel, payload)
            else:
                self._put_if_unchanged(rel, payload, etag)
            return new_generation

    def _stale(self, rel: str, detail: str) -> StaleStateError:
        return StaleStateError(
            f"{self.url_of(rel)} changed since it was read ({detail}); another run updated it: reload and retry"
        )

    def _etag(self, rel: str) -> str | None:
        try:
            return self.fs.info(self._path(rel), refresh=True).get("ETag")
        except FileNotFoundError:
            return None

    def _put_if_unchanged(self, rel: str, payload: bytes, etag: str | None) -> None:
        """A conditional PUT: S3 refuses it if another writer created or replaced the object since ``etag``."""
        path = self._path(rel)
        if etag is None and not put_create(self.fs, path, payload):
            raise self._stale(rel, "it was created by another writer meanwhile")
        if etag is not None and not put_if_match(self.fs, path, payload, etag):
            raise self._stale(rel, "another writer replaced it between this writer's read and write")
