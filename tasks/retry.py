"""Retry only where a retry helps: transient storage trouble, never bad data or a bug."""

from __future__ import annotations

from typing import Any

from lrpath_core.checkpoint import CheckpointError
from lrpath_core.storage import StoreError

STORAGE_RETRY_DELAYS = [2, 5, 15]
"""Seconds between tries: backoff over ~20 s before a storage task gives up."""


def retry_on_storage_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except CheckpointError:
        return False  # corrupt or missing checkpoint: retrying cannot fix it
    except (StoreError, ConnectionError, TimeoutError) as exc:
        return not isinstance(exc, (FileNotFoundError, PermissionError))
    except OSError as exc:
        return exc.errno is None or exc.errno not in (2, 13)  # not ENOENT/EACCES
    except Exception:  # noqa: BLE001 - every other failure is not worth a retry
        return False
    return False
