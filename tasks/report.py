"""What a person reads in the Prefect UI: the timeline, PPL per version, LR paths, loss curves.

Pictures are embedded as base64 data URLs in markdown artifacts, never as presigned URLs
(those expire); the PNG of the LR paths is also kept in the store (``reports/lr_paths.png``).
"""

from __future__ import annotations

import base64
import math
import re
import tempfile

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from lrpath_core import layout
from lrpath_core.plots import LossRows, lr_plot_png, plot_segment_losses
from lrpath_core.report import current_metrics, steps_count, timeline_appl, timeline_rows
from lrpath_core.segment import Branch
from lrpath_core.storage import Store
from lrpath_core.timeline import Timeline
from lrpath_core.timeline_store import require_timeline, store_config

MAX_TABLE_ROWS = 200
TIMELINE_COLUMNS = {
    "version": "ver",
    "name": "name",
    "status": "status",
    "delta_steps": "ΔT",
    "cumulative_steps": "S",
    "fork_step": "fork",
    "branch_steps": "B",
    "ppl": "PPL",
    "revision": "rev",
    "published_url": "published",
}


def png_markdown(title: str, png: bytes, note: str = "") -> str:
    encoded = base64.b64encode(png).decode()
    return f"### {title}\n\n![{title}](data:image/png;base64,{encoded})\n\n{note}".rstrip() + "\n"


def ppl_table(timeline: Timeline) -> list[dict]:
    """One row per release, one column per data version (``-`` where a release never saw it)."""
    count = len(timeline.versions)
    table = []
    for v in timeline.versions:
        row: dict = {"release": f"v{v.version} ({v.name})"}
        metrics = current_metrics(v)  # the newest revision's, after a re-run
        for data in range(1, count + 1):
            value = metrics.get(f"ppl_v{data}")
            row[f"v{data}"] = round(value, 3) if value is not None else "-"
        row["all"] = round(metrics["ppl"], 3) if "ppl" in metrics else "-"
        table.append(row)
    return table


def timeline_markdown(timeline: Timeline, rows: list[dict], appl: float | None) -> str:
    head = "| " + " | ".join(TIMELINE_COLUMNS.values()) + " |"
    lines = [f"### Timeline: {len(rows)} version(s)", "", head, "|" + "---|" * len(TIMELINE_COLUMNS)]
    for row in rows:
        cells = ["-" if row.get(k) is None else str(row[k]) for k in TIMELINE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if appl is not None:
        lines.append(f"APPL **{appl:.3f}**")
    for name, cost in timeline.costs().items():
        line = f"- {name}: {cost.total_steps} steps, relative cost {cost.relative_cost:.3f}"
        if cost.relative_cost_without_final_tail is not None:
            line += f" ({cost.relative_cost_without_final_tail:.3f} without the last version's main tail)"
        lines.append(line)
    steps = steps_count(timeline)
    lines.append(
        f"- steps run so far: main {steps.main}, branches {steps.branch}, re-run branches {steps.rerun}"
    )
    return "\n".join(lines) + "\n"


@task(name="timeline-report", cache_policy=NONE)
def timeline_report(store_url: str) -> dict:
    """The timeline (markdown and table), PPL per version (table) and the LR paths (PNG)."""
    store = Store(store_url)
    timeline = require_timeline(store)
    rows = timeline_rows(timeline)
    appl = timeline_appl(timeline)
    costs = timeline.costs()
    flat = [{k: v for k, v in row.items() if k != "ppl_per_version"} for row in rows]
    create_table_artifact(
        flat,
        key="timeline",
        description=(
            f"APPL {appl:.3f} · relative cost vs PTFS: path switching "
            f"{costs['path_switching'].relative_cost:.3f}, CPT {costs['cpt'].relative_cost:.3f}"
            if appl is not None and costs
            else "timeline"
        ),
    )
    create_markdown_artifact(timeline_markdown(timeline, rows, appl), key="timeline-summary")
    create_table_artifact(
        ppl_table(timeline), key="ppl-per-version", description="PPL of each release on each data version"
    )
    with tempfile.TemporaryDirectory() as tmp:
        png = lr_plot_png(timeline, store_config(store), f"{tmp}/lr_paths.png")
        with open(png, "rb") as f:
            data = f.read()
    store.write_bytes(layout.LR_PLOT, data)
    create_markdown_artifact(
        png_markdown("LR paths of this timeline", data, f"Stored at `{store.url_of(layout.LR_PLOT)}`"),
        key="lr-paths",
    )
    return {"appl": appl, "versions": rows, "relative_cost": {k: v.relative_cost for k, v in costs.items()}}


def read_losses(store: Store, run: str, first: int, end: int) -> LossRows:
    if not store.exists(layout.losses(run)):
        return []
    return [
        (int(s), float(loss), float(lr))
        for s, loss, lr in store.read_json(layout.losses(run))
        if first <= s < end
    ]


def subsample(rows: LossRows, most: int) -> LossRows:
    if len(rows) <= most:
        return rows
    every = math.ceil(len(rows) / most)
    return rows[::every]


def version_losses(store: Store, version: int, released: Branch) -> dict[str, LossRows]:
    """Version ``version``'s loss logs: the main path over its new data, and its branch."""
    record = require_timeline(store).version(version)
    start = record.cumulative_steps - record.delta_steps
    end = record.cumulative_steps
    branch_run = layout.branch_run(version, released.decay, released.alpha)
    return {
        "main path": read_losses(store, layout.MAIN_RUN, start, end),
        f"branch ({released.decay}, α={released.alpha:g})": read_losses(
            store, branch_run, released.fork_step, end
        ),
    }


@task(name="loss-report", task_run_name="loss-report-v{version}", cache_policy=NONE)
def loss_report(store_url: str, version: int, released: Branch) -> int:
    """Loss and LR against the step for the version's segments: a PNG (markdown) and a table."""
    store = Store(store_url)
    curves = version_losses(store, version, released)
    with tempfile.TemporaryDirectory() as tmp:
        out = plot_segment_losses(curves, f"{tmp}/losses.png", title=f"v{version}: measured loss and LR")
        png = out.read_bytes()
    suffix = re.sub(r"[^a-z0-9-]", "-", f"v{version}-{released.decay}-a{released.alpha:g}".lower())
    create_markdown_artifact(
        png_markdown(
            f"Loss and LR of v{version}",
            png,
            "Main path over the version's new data; the branch from its fork.",
        ),
        key=f"loss-{suffix}",
    )
    per_curve = MAX_TABLE_ROWS // max(len(curves), 1)
    table = [
        {"path": label, "step": s, "loss": round(loss, 4), "lr": float(f"{lr:.4g}")}
        for label, rows in curves.items()
        for s, loss, lr in subsample(rows, per_curve)
    ]
    create_table_artifact(table, key=f"losses-{suffix}", description=f"loss log of v{version} (subsampled)")
    return sum(len(rows) for rows in curves.values())
