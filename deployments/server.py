"""``lrpath server up|down|status``: a detached Prefect server, its pools, deployments and workers.

``up`` is idempotent: it starts only what is not running and creates only what is missing; the
pids live in ``PREFECT_HOME/lrpath-server.json`` so that ``down`` stops exactly what ``up`` started.
The database URL (it may hold a password) goes only into the server's environment, never to the
state file or the output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from deployments import api
from deployments.stack import PROJECT_DIR, Stack
from lrpath_core.errors import LrpathError
from lrpath_core.processes import descendants

STATE_FILE = "lrpath-server.json"
GPU_POOL, CPU_POOL = "lrpath-gpu", "lrpath-cpu"


class ServerError(LrpathError):
    """``lrpath server`` cannot do what was asked; the message says why."""


@dataclass
class ServerRequest:
    store: str
    home: Path
    port: int = 4200
    workers: int = 1
    db: str = "sqlite"


def database_url(db: str) -> str | None:
    """``None`` for SQLite (under PREFECT_HOME); a ``postgresql+asyncpg://`` URL for PostgreSQL."""
    if db == "sqlite":
        return None
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if db.startswith(prefix):
            return "postgresql+asyncpg://" + db[len(prefix) :]
    raise ServerError("--db takes sqlite or a postgresql://user:password@host:port/database URL")


def deployment_names() -> list[str]:
    return [d["name"] for d in yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())["deployments"]]


def read_state(home: Path) -> dict:
    path = home / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {"processes": {}}


def write_state(home: Path, state: dict) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    tmp.replace(home / STATE_FILE)


def is_running(pid: int) -> bool:
    """A live (not zombie) ``prefect`` process with this pid."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our own child and has exited
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"prefect" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop(pid: int, timeout: float = 20) -> None:
    """SIGTERM the process group (SIGKILL after ``timeout``) and wait for every descendant too."""
    group = [pid, *descendants(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        if sig == signal.SIGKILL:
            for other in group:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(other, sig)
        deadline = time.time() + timeout
        while time.time() < deadline and any(_alive(p) for p in group):
            time.sleep(0.2)
        if not any(_alive(p) for p in group):
            return


def gpu_slots(workers: int) -> int:
    """The ``gpu`` limit: devices that may train at once, workers × this host's device slots.

    Each GPU-pool worker runs one flow run at a time; a training task holds as many ``gpu`` slots
    as devices it trains on (``nproc``), and which devices of its host it takes is decided on the
    host (:mod:`lrpath_core.devices`). Workers on other hosts with more devices: raise the limit.
    """
    from lrpath_core.config import ProjectConfig
    from lrpath_core.devices import host_devices

    return workers * len(host_devices(ProjectConfig().compute.effective()))


def _worker_names(workers: int) -> dict[str, tuple[str, int | None]]:
    names = {f"worker-{GPU_POOL}-{i}": (GPU_POOL, 1) for i in range(1, workers + 1)}
    return {**names, f"worker-{CPU_POOL}": (CPU_POOL, None)}


def up(request: ServerRequest, say: Callable[[str], None] = print) -> dict:
    """Start or complete the stack; returns the state written to the state file."""
    if not request.store.strip():
        raise ServerError(
            f"no store: pass --store URL or set LRPATH_STORE (the {api.STORE_VARIABLE} variable)"
        )
    db_url = database_url(request.db)
    home = request.home.resolve()
    state = read_state(home)
    alive = {name: pid for name, pid in state["processes"].items() if is_running(pid)}
    if "server" in alive and state.get("port") != request.port:
        raise ServerError(f"a server of {home} runs on port {state.get('port')}: `lrpath server down` first")
    stack = Stack(port=request.port, home=home, store=request.store)
    stack.server_env = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": db_url} if db_url else {}
    state.update(port=request.port, api_url=stack.api_url, store=request.store, workers=request.workers)
    state["db"] = "sqlite" if db_url is None else "postgresql"
    if "server" not in alive:
        if api.healthy(stack.api_url):
            raise ServerError(f"port {request.port} already serves another Prefect API: pick another --port")
        stack.start_server()
        alive["server"] = stack.processes[-1].pid
        say(f"started the Prefect server ({state['db']}) at {stack.api_url}")
    else:
        stack.wait_healthy(60)
    state["processes"] = dict(alive)
    write_state(home, state)
    changed = stack.create_pools(gpu_limit=gpu_slots(request.workers), only_missing=True)
    missing = set(deployment_names()) - api.deployment_names(stack.api_url)
    if missing or f"variable {api.STORE_VARIABLE}" in changed:
        stack.deploy()
        changed.append(f"deployments {', '.join(deployment_names())}")
    for item in changed:
        say(f"created or updated {item}")
    wanted = _worker_names(request.workers)
    for name in [n for n in alive if n.startswith("worker-") and n not in wanted]:
        _stop(alive.pop(name))
        say(f"stopped {name}")
    for name, (pool, limit) in wanted.items():
        if name in alive:
            continue
        args = ["worker", "start", "--pool", pool, "--type", "process", "--name", name]
        alive[name] = stack._spawn(name, *args, *(["--limit", str(limit)] if limit else [])).pid
        say(f"started {name}")
    state["processes"] = alive
    write_state(home, state)
    if not changed and len(stack.processes) == 0:
        say(f"everything runs already: {stack.api_url} ({len(alive)} processes)")
    return state


def down(home: Path, say: Callable[[str], None] = print) -> list[str]:
    """Stop every process ``up`` started from this home (workers first); returns their names."""
    home = home.resolve()
    state = read_state(home)
    stopped = []
    for name, pid in sorted(state["processes"].items(), key=lambda item: item[0] == "server"):
        if is_running(pid):
            _stop(pid)
            stopped.append(name)
            say(f"stopped {name} (pid {pid})")
    state["processes"] = {}
    if (home / STATE_FILE).exists():
        write_state(home, state)
    if not stopped:
        say("nothing was running")
    return stopped


def status(home: Path) -> dict:
    """The processes ``up`` started and whether each runs; the server's pools and deployments."""
    home = home.resolve()
    state = read_state(home)
    found = {
        "home": str(home),
        "api_url": state.get("api_url"),
        "db": state.get("db"),
        "store": state.get("store"),
        "processes": {name: is_running(pid) for name, pid in state["processes"].items()},
    }
    url = state.get("api_url")
    found["healthy"] = bool(url) and api.healthy(url)
    if found["healthy"]:
        found["deployments"] = sorted(api.deployment_names(url))
    return found
