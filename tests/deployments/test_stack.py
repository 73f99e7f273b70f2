"""What ``deployments.stack`` gives the processes it starts, checked without starting them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from deployments.stack import PROJECT_DIR, Stack
from lrpath_core.config import ServerSettings


def stack_env(tmp_path: Path) -> dict[str, str]:
    return Stack(port=4999, home=tmp_path, store=str(tmp_path / "store")).env()


def test_every_deployment_runs_prefect_s_engine_with_the_python_of_the_stack(tmp_path, monkeypatch):
    """``python -m prefect.engine`` (no workspace supervisor, one Python less before Running) must be
    this environment's Python, even when the caller's PATH does not start with it."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    commands = {d["name"]: d["work_pool"]["job_variables"].get("command") for d in spec["deployments"]}
    assert set(commands.values()) == {"python -m prefect.engine"}, commands
    found = shutil.which("python", path=stack_env(tmp_path)["PATH"])
    assert found is not None and Path(found).parent == Path(sys.executable).parent


def test_the_workers_poll_as_often_as_the_server_settings_say_unless_the_environment_does(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("PREFECT_WORKER_QUERY_SECONDS", raising=False)
    assert float(stack_env(tmp_path)["PREFECT_WORKER_QUERY_SECONDS"]) == ServerSettings().worker_query_s
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
    assert stack_env(tmp_path)["PREFECT_WORKER_QUERY_SECONDS"] == "2"
