"""Base job templates of the Docker and Kubernetes work pools (JSON files in ``deployments/templates/``).

Each starts from the default template of its worker plugin (``prefect-docker``,
``prefect-kubernetes``) and adds lrpath's variables: ``nproc`` (GPUs and torchrun processes per
training segment), ``strategy``, ``devices``, ``store``, ``shm_size`` and, for Kubernetes, the
*name* of the Secret holding the S3 credentials, ``node_selector`` and ``tolerations``. No template
holds a credential. Create a pool from one with
``prefect work-pool create lrpath-gpu --type kubernetes --base-job-template deployments/templates/kubernetes-gpu.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATES = {
    "docker-gpu": "docker",
    "kubernetes-gpu": "kubernetes",
    "kubernetes-cpu": "kubernetes",
}
"""Template name -> the work pool type (``prefect work-pool create --type``) it is written for."""


def template_path(name: str) -> Path:
    if name not in TEMPLATES:
        raise KeyError(f"no job template {name!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATE_DIR / f"{name}.json"


def load_template(name: str) -> dict[str, Any]:
    """The base job template ``name`` as a dict (a fresh copy on every call)."""
    return json.loads(template_path(name).read_text())
