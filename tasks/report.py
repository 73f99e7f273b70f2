"""The timeline's summary as Prefect artifacts: a table and the LR-path plot."""

from __future__ import annotations

import base64
import tempfile

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from lrpath_core import layout
from lrpath_core.pipeline import timeline_appl
from lrpath_core.plots import lr_plot_png
from lrpath_core.report import timeline_rows
from lrpath_core.storage import Store
from lrpath_core.timeline_store import require_timeline, store_config


@task(name="timeline-report", cache_policy=NONE)
def timeline_report(store_url: str) -> dict:
    store = Store(store_url)
    timeline = require_timeline(store)
    rows = timeline_rows(timeline)
    appl = timeline_appl(timeline)
    costs = timeline.costs()
    create_table_artifact(
        rows,
        key="timeline",
        description=(
            f"APPL {appl:.3f} · relative cost vs PTFS: path switching "
            f"{costs['path_switching'].relative_cost:.3f}, CPT {costs['cpt'].relative_cost:.3f}"
            if appl is not None and costs
            else "timeline"
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        png = lr_plot_png(timeline, store_config(store), f"{tmp}/lr_paths.png")
        with open(png, "rb") as f:
            data = f.read()
    store.write_bytes(layout.LR_PLOT, data)
    if store.is_local:
        encoded = base64.b64encode(data).decode()
        create_markdown_artifact(
            f"### LR paths of this timeline\n\n![LR paths](data:image/png;base64,{encoded})\n\n"
            f"Stored at `{store.url_of(layout.LR_PLOT)}`",
            key="lr-paths",
        )
    else:
        create_image_artifact(store.sign(layout.LR_PLOT, expiration_s=7 * 24 * 3600), key="lr-paths")
    return {"appl": appl, "versions": rows, "relative_cost": {k: v.relative_cost for k, v in costs.items()}}
