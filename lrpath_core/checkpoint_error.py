"""The error of a missing, incomplete or corrupt checkpoint.

It lives apart from :mod:`lrpath_core.checkpoint` (which imports torch) so that the retry policy of
the Prefect tasks can name it without importing torch into a flow's module.
"""

from __future__ import annotations

from lrpath_core.store_sync import StoreError


class CheckpointError(StoreError):
    """A checkpoint is missing, incomplete or fails its checksums."""
