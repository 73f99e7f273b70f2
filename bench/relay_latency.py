"""Event → flow-run start through ``lrpath relay``, on a real Prefect server and process worker.

.venv/bin/python bench/relay_latency.py [--samples 8] [--gap 3] [--json]

Starts a server and a worker on ``lrpath-gpu`` (``deployments.stack``), the ``version-update``
deployment (its event trigger, ``CANCEL_NEW``) and ``lrpath relay`` as its own process. Each sample
POSTs an S3 ``ObjectCreated`` notification for ``incoming/s<i>/_READY`` to the relay and reads the
triggered run from the API. The drop has no data (only its ``_ANNOUNCED`` marker), so the run
ends at once ("nothing to do") and the next sample is not cancelled by the one before. Samples are
``--gap`` seconds apart: the worker (``--limit 1``) takes the next run only once the last run's
process has exited, about 1 s after that run is Completed, and a drop that lands then would measure
the exit, not the pickup.

Per sample, from the POST (same host, same clock):
- ``created``: the run exists (relay → marker → event → the server's trigger);
- ``pending``: the worker took it (its poll: ``ServerSettings.worker_query_s``, as ``lrpath server up``);
- ``running``: the run's ``start_time`` (the engine's process started and imported the flow module,
  which imports no torch: the tasks do).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from deployments.api import call  # noqa: E402
from deployments.stack import PROJECT_DIR, free_port, local_stack  # noqa: E402
from lrpath_core.config import load_config  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402
from lrpath_core.timeline_store import save_config  # noqa: E402

BUCKET, PREFIX = "lrpath-bench", "timeline"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def notification(name: str) -> bytes:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": f"{PREFIX}/incoming/{name}/_READY", "size": 0}},
    }
    return json.dumps({"Records": [record]}).encode()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def wait_relay(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lrpath relay exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("lrpath relay did not answer")


def new_run(api_url: str, seen: set[str]) -> dict | None:
    body = {"deployments": {"name": {"any_": ["version-update"]}}}
    runs = [r for r in call(api_url, "POST", "/flow_runs/filter", body)[1] if r["id"] not in seen]
    return runs[0] if runs else None


def state_times(api_url: str, run_id: str) -> dict[str, float]:
    """The first time the run entered each state type."""
    found: dict[str, float] = {}
    for state in call(api_url, "GET", f"/flow_run_states/?flow_run_id={run_id}")[1]:
        found.setdefault(state["type"], ts(state["timestamp"]))
    return found


def sample(api_url: str, relay_url: str, name: str, seen: set[str], timeout: float = 120) -> dict:
    sent = time.time()
    status = post(relay_url, notification(name))
    if status != 200:
        raise RuntimeError(f"the relay answered {status} for {name}")
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        run = new_run(api_url, seen)
        if run and run["state_type"] in FINAL:
            break
        time.sleep(0.2)
    else:
        raise TimeoutError(f"the run for {name} did not finish within {timeout:g} s: {run}")
    seen.add(run["id"])
    states = state_times(api_url, run["id"])
    return {
        "drop": name,
        "state": run["state_type"],
        "created_s": round(ts(run["created"]) - sent, 3),
        "pending_s": round(states["PENDING"] - sent, 3) if "PENDING" in states else None,
        "running_s": round(ts(run["start_time"]) - sent, 3) if run.get("start_time") else None,
    }


def summary(rows: list[dict], key: str) -> dict[str, float]:
    values = [r[key] for r in rows if r[key] is not None]
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument(
        "--gap", type=float, default=3.0, help="seconds between a run's end and the next POST"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end only")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        # device slots of this run only: another job's training on this host would count as overhead
        os.environ.setdefault("LRPATH_DEVICE_LOCKS", f"{tmp}/device-locks")
        store = Store(f"{tmp}/store")
        save_config(store, load_config(None, store=store.url))
        with local_stack(
            Path(tmp) / "prefect", store.url, workers={"lrpath-gpu": 1}, deploy=["version-update"]
        ) as stack:
            port = free_port()
            relay_url = f"http://127.0.0.1:{port}/"
            command = [sys.executable, "-m", "flows.cli", "relay", "--store", store.url]
            command += ["--prefix", f"{BUCKET}/{PREFIX}", "--port", str(port)]
            with open(Path(tmp) / "relay.log", "wb") as log:
                relay = subprocess.Popen(command, env=stack.env(), cwd=PROJECT_DIR, stdout=log, stderr=log)
                try:
                    wait_relay(relay_url, relay)
                    time.sleep(2)  # the trigger service loads the deployment's automation
                    seen: set[str] = set()
                    # a first run, not counted: the worker's first flow-run process warms the disk cache
                    sample(stack.api_url, relay_url, "warm-up", seen)
                    for i in range(args.samples):
                        time.sleep(args.gap)
                        rows.append(sample(stack.api_url, relay_url, f"s{i}", seen))
                        if not args.json:
                            print(json.dumps(rows[-1]), flush=True)
                finally:
                    relay.terminate()
                    relay.wait(10)
    print(
        json.dumps(
            {
                "samples": len(rows),
                "states": sorted({r["state"] for r in rows}),
                **{key: summary(rows, key) for key in ("created_s", "pending_s", "running_s")},
            }
        )
    )


if __name__ == "__main__":
    main()
