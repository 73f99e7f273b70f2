"""Keeping credentials out of published files.

A published revision is meant to be shared, and its lineage carries free-form extras and store
URLs: before anything is written, each generated file is checked for the credential values of
the store's options and of the environment.
"""

from __future__ import annotations

import os
import re
from typing import Any

from lrpath_core.publish_error import PublishError
from lrpath_core.storage import Store

_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential", re.IGNORECASE)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def secret_values(store: Store) -> set[str]:
    """Credential values a published file must not contain: secret-named storage options and env vars."""
    values: set[str] = set()

    def collect(obj: Any, key: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                collect(v, str(k))
        elif isinstance(obj, list | tuple):
            for v in obj:
                collect(v, key)
        elif isinstance(obj, str) and _SECRET_KEY.search(key):
            values.add(obj)

    collect(store.storage_options, "")
    values.update(os.environ.get(name, "") for name in _SECRET_ENV)
    # short values (moto's "testing") would match ordinary words; real credentials are long
    return {v for v in values if len(v) >= 8}


def refuse_secrets(store: Store, generated: dict[str, bytes]) -> None:
    """Raise :class:`PublishError` if any generated file (name → content) contains a credential."""
    secrets = secret_values(store)
    for name, content in generated.items():
        text = content.decode("utf-8", errors="replace")
        if any(secret in text for secret in secrets):
            raise PublishError(
                f"{name} would contain a credential from the storage options or the environment; "
                "refusing to publish (check lineage_extra and the store URL)"
            )
