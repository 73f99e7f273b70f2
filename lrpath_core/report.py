"""A timeline as rows of a status table (its LR-path plot is :func:`lrpath_core.plots.lr_plot_png`).

A version's *current* revision is its newest published one (``lrpath rerun-branch`` publishes a
new revision): its URL, its PPL and its decay go in one row, and APPL averages the current
revisions. Steps run come from ``timeline.segments``, each finished segment counted once: the
main path, the timeline's own branches (what the plan counts) and re-run branches (another decay
or α), shown apart.
"""

from __future__ import annotations

from pydantic import BaseModel

from lrpath_core.layout import branch_run
from lrpath_core.timeline import Release, Timeline, VersionRecord


def current_release(record: VersionRecord) -> Release | None:
    """The newest published revision of a version (None before its first publish)."""
    return max(record.releases, key=lambda r: r.revision) if record.releases else None


def current_metrics(record: VersionRecord) -> dict[str, float]:
    """The metrics of the version's current revision; before a publish (or for a revision recorded
    without metrics) the metrics of the timeline's own branch."""
    latest = current_release(record)
    return latest.metrics if latest is not None and latest.metrics else record.metrics


def timeline_appl(timeline: Timeline) -> float | None:
    """APPL (the mean of the versions' PPL, as :func:`lrpath_core.evaluate.appl`, which imports torch)
    over the versions' current revisions."""
    ppls = [m["ppl"] for v in timeline.versions if "ppl" in (m := current_metrics(v))]
    return float(sum(ppls) / len(ppls)) if ppls else None


class StepsCount(BaseModel):
    """Optimizer steps actually run: ``main`` + ``branch`` is what path switching's plan counts;
    ``rerun`` are the steps of re-run branches (another decay or α), counted apart."""

    main: int
    branch: int
    rerun: int

    @property
    def total(self) -> int:
        return self.main + self.branch + self.rerun

    def as_dict(self) -> dict[str, int]:
        return {**self.model_dump(), "total": self.total}


def steps_count(timeline: Timeline) -> StepsCount:
    """Steps of the finished segments in ``timeline.segments`` (keys ``path:run:start-end``).

    A branch segment is the timeline's own when it is the run of a version's decay and α from its
    planned fork to ``S_i``; any other branch segment is a re-run. A timeline without segment
    records (older stores) falls back to its ``steps_run`` totals, with no re-runs told apart.
    """
    if not timeline.segments:
        return StepsCount(main=timeline.steps_run.main, branch=timeline.steps_run.branch, rerun=0)
    own = {
        (branch_run(v.version, timeline.decay, timeline.alpha), v.fork_step, v.cumulative_steps)
        for v in timeline.versions
    }
    counts = {"main": 0, "branch": 0, "rerun": 0}
    for key, steps in timeline.segments.items():
        path, run, span = _split_key(key)
        if path == "main":
            counts["main"] += steps
        elif (run, *span) in own:
            counts["branch"] += steps
        else:
            counts["rerun"] += steps
    return StepsCount(**counts)


def _split_key(key: str) -> tuple[str, str, tuple[int, int]]:
    path, rest = key.split(":", 1)
    run, span = rest.rsplit(":", 1)
    start, end = span.split("-")
    return path, run, (int(start), int(end))


def timeline_rows(timeline: Timeline) -> list[dict]:
    costs = timeline.costs()
    rows = []
    for v in timeline.versions:
        latest = current_release(v)
        metrics = current_metrics(v)
        rows.append(
            {
                "version": v.version,
                "name": v.name,
                "status": v.status,
                "delta_steps": v.delta_steps,
                "cumulative_steps": v.cumulative_steps,
                "fork_step": v.fork_step,
                "branch_steps": v.branch_steps,
                "ppl": round(metrics["ppl"], 4) if "ppl" in metrics else None,
                "ppl_per_version": {k: round(x, 4) for k, x in metrics.items() if k.startswith("ppl_v")},
                "revision": latest.revision if latest else None,
                "revision_decay": latest.decay if latest else None,
                "revision_alpha": latest.alpha if latest else None,
                "revision_fork_step": latest.fork_step if latest else None,
                "revision_branch_steps": latest.branch_steps if latest else None,
                "published_url": latest.url if latest else None,
            }
        )
    if costs:
        ps = costs["path_switching"]
        for row in rows:
            row["relative_cost"] = round(ps.relative_cost, 4)
            without = ps.relative_cost_without_final_tail
            row["relative_cost_without_final_tail"] = None if without is None else round(without, 4)
    return rows
