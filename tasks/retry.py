"""Retry only where a retry helps: a store that is briefly unreachable, never bad data or a bug.

Transient: :class:`StoreError` (except a corrupt checkpoint or tokenizer), and the errors the S3
stack raises while the store is down or drops connections: ``ConnectionError``/``TimeoutError``,
botocore's ``EndpointConnectionError``, ``ConnectionClosedError`` and ``ReadTimeoutError``,
aiohttp's connection and payload errors, and any other ``OSError`` but a missing object or a
refused permission. Everything else fails at once.

Each storage task is declared with :func:`storage_task`, which sets ``retries=STORAGE_RETRIES,
retry_delay_seconds=STORAGE_RETRY_DELAYS, retry_condition_fn=retry_on_storage_error`` and no
result caching (tasks pass store URLs, and every step is idempotent on its own). Below the task retries, botocore retries a request
itself (``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE``; the default legacy mode spends ~10 s on a
refused connection) and s3fs retries dropped connections and timeouts (5 tries over ~2 s): an
outage of about a minute is ridden out, a longer one fails with a message naming the store.

The delays are fixed when the task modules are imported. A test shortens them on the task
objects the flow calls, e.g. ``monkeypatch.setattr(tasks.training.branch_decay,
"retry_delay_seconds", [0.2, 0.5, 1])``, and sets ``AWS_MAX_ATTEMPTS=1`` so that each try fails
in milliseconds (``tests/flows/test_storage_outage.py``).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NONE

from lrpath_core.checkpoint_error import CheckpointError
from lrpath_core.storage import StoreError
from lrpath_core.tokenizer import TokenizerError
from tasks import user_errors

user_errors.install()  # every task module imports this one: user errors log without a traceback

STORAGE_RETRY_DELAYS = [2, 5, 15]
"""Seconds between tries: backoff over ~20 s (plus botocore's own retries) before a storage task gives up."""

STORAGE_RETRIES = len(STORAGE_RETRY_DELAYS)
P = ParamSpec("P")
R = TypeVar("R")


def _connection_error_types() -> tuple[type[BaseException], ...]:
    """What the network stack raises when a server is down, refuses or drops a connection."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        found += [BotoConnectionError, HTTPClientError]  # EndpointConnectionError, ConnectionClosedError, …
    with contextlib.suppress(ImportError):
        from aiohttp import ClientConnectionError, ClientPayloadError

        found += [ClientConnectionError, ClientPayloadError]
    return tuple(found)


CONNECTION_ERRORS = _connection_error_types()


def is_connection_error(exc: BaseException) -> bool:
    """The store could not be reached, or dropped the connection: an outage, not an answer."""
    return isinstance(exc, CONNECTION_ERRORS)


def is_transient_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, CheckpointError | TokenizerError):
        return False  # corrupt or missing checkpoint / tokenizer: retrying cannot fix it
    if isinstance(exc, FileNotFoundError | PermissionError):
        return False
    if isinstance(exc, StoreError) or is_connection_error(exc):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in (errno.ENOENT, errno.EACCES)
    return False  # bad data, a bad argument or a bug: not worth a retry


def storage_task(name: str, task_run_name: str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` for a step that reads or writes the store: retried on storage trouble only."""
    retrying = {"retries": STORAGE_RETRIES, "retry_delay_seconds": STORAGE_RETRY_DELAYS}
    return task(
        name=name,
        task_run_name=task_run_name,
        cache_policy=NONE,
        retry_condition_fn=retry_on_storage_error,
        **retrying,
    )


def retry_on_storage_error(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` of the storage tasks: retry transient storage trouble only."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classified below
        return is_transient_storage_error(exc)
    return False


@contextlib.contextmanager
def store_unreachable_is_store_error(store_url: str, doing: str) -> Iterator[None]:
    """Turn a connection error inside the block into a :class:`StoreError` that names the store.

    Only connection-type errors (:func:`is_connection_error`) are wrapped; anything else passes
    through as it is, so a bug is never reported as an outage.
    """
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        raise StoreError(
            f"store {store_url} is unreachable while {doing}{_try_note()}: {_short(exc)}; "
            "check the endpoint and the network, then run the update again (what is stored is kept)"
        ) from exc


def _try_note() -> str:
    """`` (try 2 of 4)`` inside a Prefect task run with retries; empty elsewhere."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None or not context.task.retries:
        return ""
    tries = context.task.retries + 1
    return f" (try {min(context.task_run.run_count, tries)} of {tries})"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"
