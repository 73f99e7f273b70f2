"""Screenshots of the Prefect UI for docs/: a real stack, a real version-update run, headless Chromium.

.venv/bin/python scripts/ui_screenshots.py --out docs   (needs Debian's chromium)

Two drops are announced at once, so the one ``version-update`` run shows a subflow run per
version (``v1-v1``, ``v2-v2``) in its graph; the loss-curve artifact is the one of v2's run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from deployments.stack import local_stack
from lrpath_core.config import load_config
from lrpath_core.incoming import stage_incoming
from lrpath_core.storage import Store
from lrpath_core.synthetic import write_synthetic_versions
from lrpath_core.timeline_store import save_config

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def api(url: str, path: str, body: dict) -> list:
    req = urllib.request.Request(
        f"{url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def shoot(url: str, out: Path, size: str = "1500,1000") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                "--virtual-time-budget=15000",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


SMALL = {
    "data.vocab_size": 512,
    "optimizer.seq_len": 64,
    "optimizer.batch_size": 8,
    "optimizer.warmup_steps": 5,
}
"""A run small enough for screenshots within a minute."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/store")
        config = load_config(None, store=store.url, **SMALL)
        save_config(store, config)
        os.environ.setdefault("LRPATH_DEVICE_LOCKS", f"{tmp}/device-locks")
        for folder in write_synthetic_versions(f"{tmp}/data", versions=2, docs_per_version=400, seed=0):
            stage_incoming(store, folder)
        names = ["version-update", "watch-incoming", "rerun-branch", "compare-paradigms"]
        with local_stack(Path(tmp) / "prefect", store.url, port=4200, workers=None, deploy=names) as stack:
            time.sleep(2)
            stack.announce(store.url)
            run = None
            for _ in range(300):
                runs = api(
                    stack.api_url,
                    "/flow_runs/filter",
                    {"deployments": {"name": {"any_": ["version-update"]}}},
                )
                run = next((r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")), None)
                if run:
                    break
                time.sleep(1)
            assert run and run["state_type"] == "COMPLETED", run
            ui = f"http://127.0.0.1:{stack.port}"
            shoot(f"{ui}/deployments", out / "ui_deployments.png")
            shoot(f"{ui}/runs/flow-run/{run['id']}", out / "ui_version_update_run.png", "1500,1300")
            children = api(
                stack.api_url,
                "/flow_runs/filter",
                {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}},
            )
            print("version runs:", ", ".join(sorted(c["name"] for c in children)))
            ids = [run["id"], *(c["id"] for c in children)]
            artifacts = api(stack.api_url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": ids}}})
            by_key = {a["key"]: a["id"] for a in artifacts if a.get("key")}
            print("artifacts:", ", ".join(sorted(by_key)))
            loss = max((k for k in by_key if k.startswith("loss-v")), default=None)
            shots = [("timeline", "timeline", "1500,900"), ("lr-paths", "lr-paths", "1500,1400")]
            shots += [("ppl-per-version", "ppl-per-version", "1500,700")]
            shots += [(loss, "loss_curve", "1500,1300")] if loss else []
            for key, name, size in shots:
                if key in by_key:
                    shoot(f"{ui}/artifacts/artifact/{by_key[key]}", out / f"ui_artifact_{name}.png", size)
            print("flow run", run["id"], run["state_type"])


if __name__ == "__main__":
    main()
