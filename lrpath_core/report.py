"""A timeline as rows of a status table (its LR-path plot is :func:`lrpath_core.plots.lr_plot_png`)."""

from __future__ import annotations

from lrpath_core.timeline import Timeline


def timeline_rows(timeline: Timeline) -> list[dict]:
    costs = timeline.costs()
    rows = []
    for v in timeline.versions:
        latest = v.releases[-1] if v.releases else None
        rows.append(
            {
                "version": v.version,
                "name": v.name,
                "status": v.status,
                "delta_steps": v.delta_steps,
                "cumulative_steps": v.cumulative_steps,
                "fork_step": v.fork_step,
                "branch_steps": v.branch_steps,
                "ppl": round(v.metrics["ppl"], 4) if "ppl" in v.metrics else None,
                "ppl_per_version": {k: round(x, 4) for k, x in v.metrics.items() if k.startswith("ppl_v")},
                "revision": latest.revision if latest else None,
                "published_url": latest.url if latest else None,
            }
        )
    if costs:
        for row in rows:
            row["relative_cost"] = round(costs["path_switching"].relative_cost, 4)
    return rows
