"""Prefect's overhead in a version update: wall time minus the time inside training segments.

.venv/bin/python bench/prefect_overhead.py [--versions 2] [--docs 600]

Runs the `version-update` flow on the ephemeral API over generated text (tiny config) and
records when every training segment, evaluation and publish ran (wrapping the core functions the
tasks call). Overlapping segments (a branch and the main tail run side by side) count once.
On a real server and worker: `bench/server_overhead.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import lrpath_core.pipeline as pipeline  # noqa: E402
from lrpath_core.config import load_config  # noqa: E402
from lrpath_core.incoming import stage_incoming  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402
from lrpath_core.synthetic import write_synthetic_versions  # noqa: E402
from lrpath_core.timeline_store import save_config  # noqa: E402

INTERVALS: dict[str, list[tuple[float, float]]] = {"train": [], "evaluate": [], "publish": []}


def timed(kind: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            INTERVALS[kind].append((start, time.perf_counter()))

    return wrapper


def union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


# like scripts/ui_screenshots.py's set-up, sized for timing instead of for screenshots
SIZES = {
    "data.vocab_size": 1024,
    "optimizer.seq_len": 128,
    "optimizer.batch_size": 16,
    "optimizer.warmup_steps": 10,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--docs", type=int, default=600, help="generated documents per version")
    args = parser.parse_args()
    pipeline.run_segment = timed("train", pipeline.run_segment)
    pipeline.evaluate_checkpoint = timed("evaluate", pipeline.evaluate_checkpoint)
    pipeline.publish_version = timed("publish", pipeline.publish_version)
    from flows.version_update import version_update
    from tasks import training

    # the training tasks hand their own reference of run_segment to the pipeline
    training.run_segment = timed("train", training.run_segment)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"{tmp}/store")
        config = load_config(None, store=store.url, **SIZES)
        save_config(store, config)
        folders = write_synthetic_versions(f"{tmp}/data", versions=args.versions, docs_per_version=args.docs)
        for folder in folders:
            stage_incoming(store, folder)
            for values in INTERVALS.values():
                values.clear()
            start = time.perf_counter()
            version_update(store=store.url)
            wall = time.perf_counter() - start
            train, evaluate, publish = (union(INTERVALS[k]) for k in ("train", "evaluate", "publish"))
            rows.append(
                {
                    "version": len(rows) + 1,
                    "wall_s": round(wall, 2),
                    "train_s": round(train, 2),
                    "evaluate_s": round(evaluate, 2),
                    "publish_s": round(publish, 2),
                    "overhead_s": round(wall - train, 2),
                    "overhead_excl_eval_publish_s": round(wall - train - evaluate - publish, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"runs": rows}))


if __name__ == "__main__":
    main()
