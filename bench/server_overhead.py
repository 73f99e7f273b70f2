"""Per-version Prefect overhead on a real server: a version-update flow run's wall time minus its work.

.venv/bin/python bench/server_overhead.py [--versions 2] [--docs 6000] [--json]

Starts a real ``prefect server start`` (SQLite) and a process worker on ``lrpath-gpu`` with
``deployments.stack`` (as ``lrpath server up`` does), drops generated text into ``incoming/`` one
version at a time and announces it like the watcher. Training runs with the project's default
configuration (the demo's model and sizes: ``lrpath demo --synthetic`` trains 6,000 documents per
version). Every figure comes from the server's API after the run:

- ``wall``: the ``version-update`` run's start (Running) to its end;
- ``work``: the union of the Running intervals of its training (``main-v*``, ``branch-v*``),
  ``evaluate-v*`` and ``publish-v*`` task runs (the branch and the main tail overlap: counted once);
- ``overhead = wall − work``: orchestration (flow, subflow and task runs, the ``gpu`` limit),
  ingest (tokenization) and the report artifacts;
- ``between_tasks``: wall minus the union of every task run (a subflow's wrapper task run is not
  one): Prefect alone; ``gaps`` lists those stretches with the tasks around them;
- ``pickup``: the run's creation (by the event's trigger) to Running: worker poll
  (``ServerSettings.worker_query_s``), the engine's process start, the flow module's import (no
  torch: the first training task imports it, inside its Running interval, so inside ``work``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect_overhead import union  # noqa: E402 (bench/ is the script's folder)

from deployments.api import call  # noqa: E402
from deployments.stack import local_stack  # noqa: E402
from lrpath_core.config import DemoSettings, load_config  # noqa: E402
from lrpath_core.incoming import stage_incoming  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402
from lrpath_core.synthetic import write_synthetic_versions  # noqa: E402
from lrpath_core.timeline_store import save_config  # noqa: E402

FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
WORK_PREFIXES = ("main-v", "branch-v", "evaluate-v", "publish-v")
# a task run's name past its task's: "-v2", "-v2-…" (task_run_name) or Prefect's "-a1b" / "-0"
TASK_SUFFIX = re.compile(r"-(v\d+.*|[0-9a-f]{3}|\d+)$")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def runs_of(api_url: str, deployment: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return call(api_url, "POST", "/flow_runs/filter", body)[1]


def wait_final(api_url: str, seen: set[str], timeout: float) -> dict:
    """The first version-update run not in ``seen``, once it is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in runs_of(api_url, "version-update") if r["id"] not in seen]
        if new and new[0]["state_type"] in FINAL:
            return new[0]
        time.sleep(1)
    raise TimeoutError(f"no finished version-update run within {timeout:g} s")


def task_intervals(api_url: str, flow_run_id: str) -> list[tuple[str, float, float]]:
    """(name, start, end) of every task run of the flow run and of its subflow runs; a subflow's
    wrapper task run (the parent's record of the subflow, spanning all of it) is not a task."""
    children = call(
        api_url, "POST", "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}}
    )[1]
    ids = [flow_run_id, *(c["id"] for c in children)]
    wrappers = {c.get("parent_task_run_id") for c in children}
    tasks = call(api_url, "POST", "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": ids}}})[1]
    return sorted(
        (t["name"], ts(t["start_time"]), ts(t["end_time"]))
        for t in tasks
        if t.get("start_time")
        and t.get("end_time")
        and t["state_type"] == "COMPLETED"
        and t["id"] not in wrappers
    )


def gaps(start: float, end: float, tasks: list[tuple[str, float, float]]) -> list[dict]:
    """The stretches of the run in which no task ran, each with the task before it: where Prefect's
    own time goes."""
    out, cursor, before = [], start, "(run start)"
    for name, a, b in sorted(tasks, key=lambda t: t[1]):
        if a - cursor > 0.05:
            out.append({"after": before, "seconds": round(a - cursor, 2), "before": name})
        if b > cursor:
            cursor, before = b, name
    if end - cursor > 0.05:
        out.append({"after": before, "seconds": round(end - cursor, 2), "before": "(run end)"})
    return out


def measure(api_url: str, run: dict) -> dict:
    start, end = ts(run["start_time"]), ts(run["end_time"])
    tasks = task_intervals(api_url, run["id"])
    work = union([(a, b) for name, a, b in tasks if name.startswith(WORK_PREFIXES)])
    train = union([(a, b) for name, a, b in tasks if name.startswith(WORK_PREFIXES[:2])])
    every_task = union([(a, b) for _, a, b in tasks])
    wall = end - start
    return {
        "run": run["name"],
        "state": run["state_type"],
        "pickup_s": round(start - ts(run["created"]), 2),
        "wall_s": round(wall, 2),
        "train_s": round(train, 2),
        "work_s": round(work, 2),
        "overhead_s": round(wall - work, 2),
        "overhead_pct_of_train": round(100 * (wall - work) / train, 2) if train else None,
        "between_tasks_s": round(wall - every_task, 2),
        "work_tasks_s": {name: round(b - a, 2) for name, a, b in tasks if name.startswith(WORK_PREFIXES)},
        "other_tasks_s": other_tasks(tasks),
        "gaps": gaps(start, end, tasks),
    }


def other_tasks(tasks: list[tuple[str, float, float]]) -> dict[str, float]:
    """Seconds in each task that is neither training, evaluation nor publishing, by name without its
    version suffix (``ingest``, ``loss-report``, ``timeline-report`` …): where the overhead goes."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for name, a, b in tasks:
        if not name.startswith(WORK_PREFIXES):
            spans.setdefault(TASK_SUFFIX.sub("", name), []).append((a, b))
    return {name: round(union(s), 2) for name, s in sorted(spans.items())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--docs", type=int, default=DemoSettings().synthetic_docs_per_version)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for one version")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # device slots of this run only: another job's training on this host would count as overhead
        os.environ.setdefault("LRPATH_DEVICE_LOCKS", f"{tmp}/device-locks")
        store = Store(f"{tmp}/store")
        save_config(store, load_config(None, store=store.url))
        folders = write_synthetic_versions(f"{tmp}/data", versions=args.versions, docs_per_version=args.docs)
        with local_stack(
            Path(tmp) / "prefect", store.url, workers={"lrpath-gpu": 1}, deploy=["version-update"]
        ) as stack:
            time.sleep(2)  # the trigger service loads the deployment's automation
            seen: set[str] = set()
            for folder in folders:
                stage_incoming(store, folder)
                stack.announce(store.url)
                run = wait_final(stack.api_url, seen, args.timeout)
                seen.add(run["id"])
                rows.append(measure(stack.api_url, run))
                if not args.json:
                    print(json.dumps(rows[-1]), flush=True)
    summary = {
        "runs": rows,
        "docs_per_version": args.docs,
        "median_overhead_s": statistics.median(r["overhead_s"] for r in rows),
        "max_overhead_pct_of_train": max(r["overhead_pct_of_train"] or 0 for r in rows),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
