"""A local Prefect stack for lrpath: server (SQLite), work pools, the ``gpu`` limit, deployments, workers.

``python -m deployments.stack up [--port 4200] [--store URL]`` starts everything on 127.0.0.1 and
keeps it running until Ctrl-C; the UI is at ``http://127.0.0.1:PORT``. The tests use the same
functions to start and stop a real server and worker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deployments import api
from lrpath_core import announce as announcing
from lrpath_core.config import ServerSettings
from lrpath_core.incoming import incoming_name
from lrpath_core.storage import Store

PROJECT_DIR = Path(__file__).resolve().parents[1]
POOLS = {"lrpath-cpu": None, "lrpath-gpu": 1}
"""Work pools and the number of flow runs each worker takes at once (the GPU pool: one)."""
GPU_LIMIT = ("gpu", 1)
HEARTBEAT_S = ServerSettings().heartbeat_s
"""``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` of every flow run the stack's workers start."""
ZOMBIE_AUTOMATION = "lrpath-crash-zombie-flow-runs"
ZOMBIE_AFTER_BEATS = ServerSettings().zombie_after_beats
"""A Running flow run that missed this many heartbeats is set Crashed (its process is gone)."""
WORKER_QUERY_S = ServerSettings().worker_query_s
"""``PREFECT_WORKER_QUERY_SECONDS`` of the stack's workers (unless the environment sets it)."""


def prefect_bin() -> str:
    local = Path(sys.executable).with_name("prefect")
    return str(local) if local.exists() else (shutil.which("prefect") or "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    port: int
    home: Path
    store: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    server_env: dict[str, str] = field(default_factory=dict)
    """Only the server's environment (e.g. the database URL, which may hold a password)."""
    zombie_after_s: float = ZOMBIE_AFTER_BEATS * HEARTBEAT_S
    """No heartbeat for this long: the zombie automation sets the flow run Crashed."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_API_URL": self.api_url,
            "LRPATH_PROJECT_DIR": str(PROJECT_DIR),
            "LRPATH_STORE": self.store,
            # the deployments' command is `python -m prefect.engine` (prefect.yaml): this Python
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_S))
        env.setdefault("PREFECT_WORKER_QUERY_SECONDS", f"{WORKER_QUERY_S:g}")
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [prefect_bin(), *args],
            env=self.env(),
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"prefect {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def announce(self, store_url: str, sources: list[str] | None = None) -> list[str]:
        """Announce drops as the watcher and the relay do: each drop once, whoever else announced it.

        ``sources`` are drop folders under the store's ``incoming/`` (default: every complete drop
        that is not a version yet). Only a drop whose ``_ANNOUNCED`` marker this call created is
        emitted (:func:`lrpath_core.announce.announce_drops`); returns those drops.
        """
        store = Store(store_url)
        if sources is None:
            names = announcing.waiting_drops(store)
        else:
            names = [name for source in sources if (name := incoming_name(store, source)) is not None]
        return announcing.announce_drops(store, names, self.emit_arrived)

    def emit_arrived(self, store_url: str, drop: str, **extra: str) -> None:
        """Emit ``lrpath.data.arrived`` for ``drop`` with no marker (what a duplicate emitter sends).

        Through the server's ``POST /events`` (what Prefect's client sends over its websocket),
        so that a test can emit from many threads without starting a process each.
        """
        event = {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(UTC).isoformat(),
            "event": announcing.DATA_ARRIVED,
            "resource": announcing.event_resource(store_url),
            "payload": {**announcing.event_payload(store_url, drop), **extra},
        }
        status, _ = api.call(self.api_url, "POST", "/events", [event])
        if status != 204:
            raise RuntimeError(f"{self.api_url}/events answered {status} to {announcing.DATA_ARRIVED}")

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.home / f"{name}.log"
        self.logs.append(log)
        handle = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [prefect_bin(), *args],
            env=self.env(**(env or {})),
            cwd=PROJECT_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def start_server(self, timeout: float = 90) -> None:
        self._spawn(
            "server", "server", "start", "--host", "127.0.0.1", "--port", str(self.port), env=self.server_env
        )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if api.healthy(self.api_url):
                return
            if any(p.poll() is not None for p in self.processes[:1]):
                break
            time.sleep(0.5)
        raise RuntimeError(
            f"Prefect server on port {self.port} did not come up; see {self.home / 'server.log'}"
        )

    def create_pools(self, gpu_limit: int = GPU_LIMIT[1], only_missing: bool = False) -> list[str]:
        """The work pools, the ``gpu`` limit and the ``lrpath_store`` variable; returns what changed."""
        changed = []
        for pool in POOLS:
            if only_missing and api.exists(self.api_url, f"/work_pools/{pool}"):
                continue
            self.run("work-pool", "create", pool, "--type", "process", "--overwrite")
            changed.append(f"work pool {pool}")
        if api.ensure_limit(self.api_url, GPU_LIMIT[0], gpu_limit):
            changed.append(f"concurrency limit {GPU_LIMIT[0]}={gpu_limit}")
        if api.ensure_variable(self.api_url, api.STORE_VARIABLE, self.store):
            changed.append(f"variable {api.STORE_VARIABLE}")
        if self.ensure_zombie_automation():
            changed.append(f"automation {ZOMBIE_AUTOMATION}")
        return changed

    def ensure_zombie_automation(self) -> bool:
        """Prefect's zombie detection (docs/OPERATIONS.md); True when it was created or changed.

        The self-hosted server has no built-in rule: a run whose process died stays Running (and
        keeps its deployment's concurrency slot for up to 300 s). This proactive trigger sets a
        run that sent a heartbeat, then neither another one nor a final state for
        :attr:`zombie_after_s`, Crashed; the watcher then announces its version again.
        """
        body = zombie_automation(self.zombie_after_s)
        _, found = api.call(
            self.api_url,
            "POST",
            "/automations/filter",
            {"automations": {"name": {"any_": [ZOMBIE_AUTOMATION]}}},
        )
        if not found:
            api.call(self.api_url, "POST", "/automations/", body)
            return True
        if found[0]["trigger"].get("within") == body["trigger"]["within"] and found[0]["enabled"]:
            return False
        api.call(self.api_url, "PUT", f"/automations/{found[0]['id']}", body)
        return True

    def set_interval(self, deployment: str, seconds: float) -> None:
        """Replace a deployment's schedules with one interval (a test's short watcher interval)."""
        _, found = api.call(
            self.api_url, "POST", "/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}}
        )
        if not found:
            raise RuntimeError(f"no deployment {deployment} on {self.api_url}: deploy it first")
        schedules = [{"schedule": {"interval": seconds}, "active": True}]
        status, _ = api.call(
            self.api_url, "PATCH", f"/deployments/{found[0]['id']}", {"schedules": schedules}
        )
        if status >= 300:
            raise RuntimeError(f"could not set the schedule of {deployment} ({status})")

    def deploy(self, names: list[str] | None = None) -> str:
        """``prefect deploy`` of every deployment in prefect.yaml, or of the named ones."""
        selection = [arg for name in names for arg in ("--name", name)] if names else ["--all"]
        return self.run("--no-prompt", "deploy", *selection).stdout

    def start_workers(self, pools: dict[str, int | None] | None = None) -> None:
        for pool, limit in (pools or POOLS).items():
            args = ["worker", "start", "--pool", pool, "--type", "process", "--name", f"{pool}-worker"]
            if limit:
                args += ["--limit", str(limit)]
            self._spawn(f"worker-{pool}", *args)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.processes.clear()


def zombie_automation(after_s: float) -> dict:
    """The automation's JSON for the REST API (``prefect.automations.Automation`` in docs/OPERATIONS.md)."""
    final = [f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")]
    return {
        "name": ZOMBIE_AUTOMATION,
        "description": f"a Running flow run without a heartbeat for {after_s:g} s is set Crashed",
        "enabled": True,
        "trigger": {
            "type": "event",
            "after": ["prefect.flow-run.heartbeat"],
            "expect": ["prefect.flow-run.heartbeat", *final],
            "match": {"prefect.resource.id": ["prefect.flow-run.*"]},
            "for_each": ["prefect.resource.id"],
            "posture": "Proactive",
            "threshold": 1,
            "within": after_s,
        },
        "actions": [
            {
                "type": "change-flow-run-state",
                "state": "CRASHED",
                "message": f"no heartbeat for {after_s:g} s: the process running it is gone",
            }
        ],
    }


@contextlib.contextmanager
def local_stack(
    home: Path,
    store: str,
    port: int | None = None,
    workers: dict[str, int | None] | None = None,
    deploy: bool | list[str] = True,
    zombie_after_s: float | None = None,
) -> Iterator[Stack]:
    """A running server (+ pools, limit, zombie automation, deployments, workers), stopped on exit."""
    stack = Stack(port=port or free_port(), home=home, store=store)
    if zombie_after_s is not None:
        stack.zombie_after_s = zombie_after_s
    try:
        stack.start_server()
        stack.create_pools()
        if deploy:
            stack.deploy(deploy if isinstance(deploy, list) else None)
        if workers is None or workers:
            stack.start_workers(workers)
        yield stack
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start server, pools, deployments and workers; Ctrl-C stops them")
    up.add_argument("--port", type=int, default=4200)
    up.add_argument(
        "--home", default=str(PROJECT_DIR / ".prefect"), help="PREFECT_HOME (SQLite database, logs)"
    )
    up.add_argument("--store", default=os.environ.get("LRPATH_STORE", str(PROJECT_DIR / "lrpath-store")))
    args = parser.parse_args(argv)
    store = args.store if "://" in args.store else os.path.abspath(args.store)
    with local_stack(Path(args.home), store, port=args.port) as stack:
        print(f"Prefect UI:  http://127.0.0.1:{stack.port}")
        print(f"API:         {stack.api_url}   (export PREFECT_API_URL={stack.api_url})")
        print(f"store:       {store}")
        print("pools:       lrpath-cpu, lrpath-gpu (1 run at a time); global concurrency limit gpu=1")
        print(f"logs:        {args.home}/*.log — Ctrl-C stops everything")
        try:
            while all(p.poll() is None for p in stack.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
