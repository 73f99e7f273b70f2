"""``lrpath server up`` on PostgreSQL with two GPU-pool workers, end to end, and the CLI through it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from deployments import server
from deployments.api import call
from deployments.stack import PROJECT_DIR, Stack, free_port, prefect_bin
from lrpath_core import layout
from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config

LRPATH = [sys.executable, "-m", "flows.cli"]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def lrpath(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LRPATH, *args], env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout
    )


def finished_runs(api_url: str, deployment: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": [deployment]}}}
    return [r for r in call(api_url, "POST", "/flow_runs/filter", body)[1] if r["state_type"] in FINAL]


def wait_finished(api_url: str, deployment: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if runs := finished_runs(api_url, deployment):
            return runs[0]
        time.sleep(1)
    raise AssertionError(f"no finished {deployment} run within {timeout} s")


@pytest.mark.server
@pytest.mark.slow
def test_server_up_on_postgresql_with_two_workers_releases_a_version(
    tmp_path, postgres_url, synthetic_sources, make_config
):
    store = Store(str(tmp_path / "store"))
    save_config(store, make_config(store.url))
    stage_incoming(store, synthetic_sources[0])
    home, port = tmp_path / "prefect", free_port()
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    env.pop("PREFECT_API_URL", None)
    up = ["server", "up", "--store", store.url, "--db", postgres_url, "--workers", "2", "--port", str(port)]
    try:
        started = lrpath(*up, "--home", str(home), env=env)
        assert started.returncode == 0, started.stderr + started.stdout
        assert "started the Prefect server (postgresql)" in started.stdout
        assert "postgres@" not in started.stdout + started.stderr
        again = lrpath(*up, "--home", str(home), env=env)
        assert "everything runs already" in again.stdout, again.stderr
        state = server.read_state(home)
        assert sorted(state["processes"]) == [
            "server",
            "worker-lrpath-cpu",
            "worker-lrpath-gpu-1",
            "worker-lrpath-gpu-2",
        ]
        assert postgres_url.split("@")[0] not in (home / server.STATE_FILE).read_text()

        stack = Stack(port=port, home=home, store=store.url)
        listed = stack.run("deployment", "ls").stdout
        for name in server.deployment_names():
            assert name in listed
        stack.announce(store.url, [store.url_of(layout.incoming_dir("v1"))])
        run = wait_finished(stack.api_url, "version-update", timeout=150)
        assert run["state_type"] == "COMPLETED", run["state"]
        assert store.exists("models/v1/r1/model.safetensors")

        api_env = {**env, "PREFECT_API_URL": stack.api_url}
        rerun = lrpath("rerun-branch", "1", "--decay", "linear", "--store", store.url, env=api_env)
        assert rerun.returncode == 0, rerun.stderr + rerun.stdout
        assert "rerun-branch/rerun-branch: flow run" in rerun.stdout and "Completed" in rerun.stdout
        assert store.exists("models/v1/r2/model.safetensors")
        updated = lrpath("update", "--store", store.url, env=api_env)
        assert updated.returncode == 0, updated.stderr + updated.stdout
        assert "Completed" in updated.stdout and "APPL" in updated.stdout
    finally:
        stopped = server.down(home, say=lambda _: None)
    assert "server" in stopped and len(stopped) == 4
    assert not any(server.is_running(pid) for pid in state["processes"].values())
    leftover = subprocess.run(["pgrep", "-f", "--", f"--port {port}"], capture_output=True, text=True).stdout
    assert not leftover.strip(), leftover


def test_a_failed_deployment_run_is_one_line_and_exit_1(monkeypatch, capsys):
    from types import SimpleNamespace

    import typer

    from flows import cli_timeline

    state = SimpleNamespace(type=SimpleNamespace(value="FAILED"), name="Failed", message="Flow run\n boom")
    monkeypatch.setattr(
        "deployments.remote.run_and_follow", lambda name, parameters: SimpleNamespace(name="x-1", state=state)
    )
    with pytest.raises(typer.Exit) as exited:
        cli_timeline._run_on_server("version-update/version-update", {"store": "s", "alpha": None})
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == "lrpath: error: flow run x-1 Failed: Flow run boom\n"


def test_server_up_refuses_without_a_store_and_a_bad_db(tmp_path):
    with pytest.raises(server.ServerError, match="no store"):
        server.up(server.ServerRequest(store="", home=tmp_path))
    with pytest.raises(server.ServerError, match="--db takes sqlite"):
        server.up(server.ServerRequest(store="/x", home=tmp_path, db="mysql://u@h/d"))
    assert server.database_url("postgresql://u:p@h:1/d") == "postgresql+asyncpg://u:p@h:1/d"
    assert prefect_bin()
