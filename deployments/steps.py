"""A ``prefect deploy`` build step: refuse to deploy when the store variable is missing.

Prefect 3.9 renders a missing ``{{ prefect.variables.NAME }}`` as ``''`` without a word, and the
flows would then fall back to ``LRPATH_STORE`` or ``./lrpath-store`` of the worker's directory.
"""

from __future__ import annotations

from deployments.api import STORE_VARIABLE


class MissingStoreVariable(ValueError):
    pass


def require_store(store: str = "") -> dict[str, str]:
    """Build step of prefect.yaml: ``store`` is the rendered ``{{ prefect.variables.lrpath_store }}``."""
    if not str(store).strip():
        raise MissingStoreVariable(
            f"the Prefect Variable {STORE_VARIABLE} is not set: run `lrpath server up --store URL` "
            f"or `prefect variable set {STORE_VARIABLE} URL` before `prefect deploy`"
        )
    return {"store": store}
