"""Conditional writes on an object store: create-only and replace-if-unchanged.

S3 (and MinIO, and moto) honour ``If-None-Match: *`` (create an object only when it does not
exist) and ``If-Match: <etag>`` (replace it only when nobody changed it since). Leases
(:mod:`lrpath_core.lease`) and generation-checked JSON state (``Store.write_json_checked``) are
built on them. :func:`check_conditional_writes` makes sure the server really refuses a second
create and a stale ``If-Match``: a server that ignores them would make every lease a no-op.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from lrpath_core import layout
from lrpath_core.errors import LrpathError

PRECONDITION_MARKERS = ("PreconditionFailed", "pre-conditions", "ConditionalRequestConflict", "412")
_checked: dict[str, bool] = {}


class LeaseError(LrpathError):
    """A lease could not be taken or was lost, or the store cannot hold one; the message says which."""


def precondition_failed(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__}"
    return isinstance(exc, FileExistsError) or any(m in text for m in PRECONDITION_MARKERS)


def put_create(fs: Any, path: str, data: bytes) -> bool:
    """Create ``path`` only if it does not exist; False when it already does."""
    try:
        fs.pipe_file(path, data, mode="create")
    except (FileExistsError, OSError) as exc:
        if precondition_failed(exc):
            return False
        raise
    return True


def put_if_match(fs: Any, path: str, data: bytes, etag: str) -> bool:
    """Replace ``path`` only if its ETag is still ``etag``; False when someone changed it."""
    try:
        fs.pipe_file(path, data, IfMatch=etag)
    except OSError as exc:
        if precondition_failed(exc) or isinstance(exc, FileNotFoundError):
            return False
        raise
    return True


def check_conditional_writes(fs: Any, root: str, where: str) -> None:
    """Refuse a server that ignores ``If-None-Match``/``If-Match`` (checked once per location)."""
    if _checked.get(where):
        return
    probe = f"{root}/{layout.LOCKS_CLOCK}/selftest-{uuid.uuid4().hex}"
    try:
        first = put_create(fs, probe, b"1")
        second = put_create(fs, probe, b"2")
        stale = put_if_match(fs, probe, b"3", '"00000000000000000000000000000000"')
    finally:
        with contextlib.suppress(Exception):
            fs.rm(probe)
    if not first or second or stale:
        ignored = "If-None-Match" if second else "If-Match"
        raise LeaseError(
            f"the object store behind {where} ignores conditional writes ({ignored}): two workers could "
            "then publish over each other. Use a server that honours them (AWS S3, MinIO 2024 or newer, "
            "moto 5) or a local store"
        )
    _checked[where] = True
