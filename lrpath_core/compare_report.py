"""A comparison's results: costs checked against the plan, ``results.json``, a text table, plots."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from lrpath_core import layout
from lrpath_core.compare_result import CompareResult, ParadigmResult
from lrpath_core.compare_runs import ParadigmRun
from lrpath_core.compare_setup import BASELINE_SHAPE, CompareError, CompareSetup
from lrpath_core.config import ProjectConfig
from lrpath_core.evaluate import appl
from lrpath_core.planner import PlanRequest, make_plan
from lrpath_core.plots import plot_comparison
from lrpath_core.storage import Store
from lrpath_core.timeline import Paradigm, lr_paths, paradigm_steps

ORDER: tuple[Paradigm, ...] = ("ptfs", "cpt", "path_switching")


def summarize(setup: CompareSetup, config: ProjectConfig, runs: dict[Paradigm, ParadigmRun]) -> CompareResult:
    """Check the steps run against the plan, then write results.json, results.txt and the plots."""
    planned = paradigm_steps(setup.plans)
    for name in ORDER:
        if runs[name].steps_run != planned[name]:
            raise CompareError(
                f"{name} ran {runs[name].steps_run} optimizer steps but its plan says {planned[name]}; "
                f"see {runs[name].store}"
            )
    ptfs_steps = runs["ptfs"].steps_run
    paradigms = {
        name: ParadigmResult(
            appl=appl([r.ppl for r in runs[name].releases]),
            relative_cost=runs[name].steps_run / ptfs_steps,
            ppl=[r.ppl for r in runs[name].releases],
            steps_run=runs[name].steps_run,
            ppl_per_version=[r.ppl_per_version for r in runs[name].releases],
        )
        for name in ORDER
    }
    deltas = [p.delta_steps for p in setup.plans]
    request = PlanRequest.from_config(deltas, config).model_copy(
        update={"alpha": setup.alpha, "decay": setup.decay}
    )
    plan = {**make_plan(request).to_json_dict(), "baseline_decay": BASELINE_SHAPE, "sources": setup.sources}
    result = CompareResult(paradigms=paradigms, plan=plan, config=config.model_dump(mode="json"))
    root = Store(setup.out)
    root.write_text(layout.COMPARE_RESULTS, json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    root.write_text(layout.COMPARE_TABLE, format_table(result) + "\n")
    write_plots(root, setup, config, result)
    return result


def write_plots(root: Store, setup: CompareSetup, config: ProjectConfig, result: CompareResult) -> list[str]:
    """Draw the comparison's figures locally, then put them in the comparison folder."""
    o = config.optimizer
    paths = lr_paths(setup.plans, o.lr_max, o.lr_min, o.warmup_steps, BASELINE_SHAPE)
    paths["path_switching"] = lr_paths(setup.plans, o.lr_max, o.lr_min, o.warmup_steps, setup.decay)[
        "path_switching"
    ]
    title = f"{len(setup.plans)} versions, alpha={setup.alpha:g}, branch decay={setup.decay}"
    with tempfile.TemporaryDirectory(prefix="lrpath-compare-") as tmp:
        lr_png, ppl_png, cost_png = (os.path.join(tmp, name) for name in layout.COMPARE_PLOTS)
        plot_comparison(paths, result, lr_png, ppl_png, cost_png, title=title)
        for name, path in zip(layout.COMPARE_PLOTS, (lr_png, ppl_png, cost_png), strict=True):
            with open(path, "rb") as f:
                root.write_bytes(name, f.read())
    return [root.url_of(name) for name in layout.COMPARE_PLOTS]


def _describe(result: CompareResult) -> str:
    c, plan = result.config, result.plan
    o = c["optimizer"]
    return (
        f"{len(plan['versions'])} versions · alpha {plan['alpha']:g} · branch decay {plan['decay']} · "
        f"model {c['model']['preset']} · vocab {c['data']['vocab_size']} · seq {o['seq_len']} · "
        f"batch {o['batch_size']} · lr {o['lr_max']:g}→{o['lr_min']:g} · warm-up {o['warmup_steps']} · "
        f"seed {o['seed']}"
    )


def table_rows(result: CompareResult) -> list[dict[str, Any]]:
    rows = []
    for name, r in result.paradigms.items():
        row: dict[str, Any] = {
            "paradigm": name,
            "steps": r.steps_run,
            "relative cost": round(r.relative_cost, 4),
        }
        row.update({f"PPL v{i}": round(p, 3) for i, p in enumerate(r.ppl, start=1)})
        row["APPL"] = round(r.appl, 3)
        rows.append(row)
    return rows


def format_table(result: CompareResult) -> str:
    """The results as text: PPL of each release, APPL and cost; then the last release per data version."""
    versions = len(result.plan["versions"])
    head = f"{'paradigm':<15} {'steps':>7} {'rel. cost':>9}" + "".join(
        f" {f'v{i} PPL':>9}" for i in range(1, versions + 1)
    )
    lines = [
        _describe(result),
        "",
        "PPL of release v_i on the validation data of D_1..D_i (token-weighted)",
        head + f" {'APPL':>9}",
    ]
    for name, r in result.paradigms.items():
        cells = "".join(f" {p:>9.3f}" for p in r.ppl)
        lines.append(f"{name:<15} {r.steps_run:>7} {r.relative_cost:>9.3f}{cells} {r.appl:>9.3f}")
    lines += ["", f"PPL of the last release (v{versions}) per data version"]
    lines.append(f"{'paradigm':<15}" + "".join(f" {f'D_{i}':>9}" for i in range(1, versions + 1)))
    for name, r in result.paradigms.items():
        last = r.ppl_per_version[-1]
        lines.append(f"{name:<15}" + "".join(f" {last[f'v{i}']:>9.3f}" for i in range(1, versions + 1)))
    return "\n".join(lines)


def markdown_report(result: CompareResult) -> str:
    rows = table_rows(result)
    header = list(rows[0])
    lines = [
        "### PTFS vs CPT vs path switching",
        "",
        _describe(result),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(row[k]) for k in header) + " |" for row in rows]
    planned = result.plan["paradigms"]
    lines += [
        "",
        "Relative cost = optimizer steps run / PTFS's; planned: "
        + ", ".join(f"{k} {v['relative_cost']:.3f}" for k, v in planned.items())
        + ". APPL = mean over releases of each release's PPL.",
    ]
    return "\n".join(lines)
