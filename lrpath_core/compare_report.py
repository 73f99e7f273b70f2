"""A comparison's results: costs checked against the plan, ``results.json``, a text table, plots."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from typing import Any

from lrpath_core import layout
from lrpath_core.compare_related import setup_lr_paths
from lrpath_core.compare_result import CompareResult, ParadigmResult, SeedResult
from lrpath_core.compare_runs import ParadigmRun
from lrpath_core.compare_setup import CompareError, CompareSetup
from lrpath_core.config import ProjectConfig
from lrpath_core.evaluate import appl
from lrpath_core.planner import PlanRequest, make_plan
from lrpath_core.plots import plot_comparison
from lrpath_core.storage import Store
from lrpath_core.timeline import PARADIGMS, Paradigm, final_tail_steps, paradigm_steps

SeedRuns = dict[int, dict[Paradigm, ParadigmRun]]
"""Every run of a comparison: seed → paradigm → its run."""


def summarize(setups: list[CompareSetup], config: ProjectConfig, runs: SeedRuns) -> CompareResult:
    """Check the steps run against the plan, then write results.json, results.txt and the plots."""
    first = setups[0]
    if any(s.plans != first.plans for s in setups):
        raise CompareError(
            f"the seeds' data in {first.out} fill different steps per version; compare them in separate --out folders"
        )
    planned = paradigm_steps(first.plans)
    names = [p for p in PARADIGMS if p in runs[first.seed]]
    for seed, by_name in runs.items():
        for name, run in by_name.items():
            if run.steps_run != planned[name]:
                raise CompareError(
                    f"{name} (seed {seed}) ran {run.steps_run} optimizer steps but its plan says "
                    f"{planned[name]}; see {run.store}"
                )
    ptfs_steps, tail = planned["ptfs"], final_tail_steps(first.plans)
    paradigms = {name: _paradigm_result(name, runs, ptfs_steps, tail) for name in names}
    deltas = [p.delta_steps for p in first.plans]
    request = PlanRequest.from_config(deltas, config).model_copy(
        update={"alpha": first.alpha, "decay": first.decay}
    )
    plan = {**make_plan(request).to_json_dict(), "sources": first.sources}
    result = CompareResult(
        paradigms=paradigms,
        seeds=[s.seed for s in setups],
        settings=first.settings.model_dump(mode="json"),
        plan=plan,
        config=config.model_dump(mode="json"),
    )
    root = Store(first.out)
    root.write_text(layout.COMPARE_RESULTS, json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    root.write_text(layout.COMPARE_TABLE, format_table(result) + "\n")
    write_plots(root, first, config, result)
    return result


def _paradigm_result(name: Paradigm, runs: SeedRuns, ptfs_steps: int, tail: int) -> ParadigmResult:
    rows = []
    for seed, by_name in runs.items():
        run = by_name[name]
        ppl = [r.ppl for r in run.releases]
        ptfs = by_name.get("ptfs")
        rows.append(
            SeedResult(
                seed=seed,
                appl=appl(ppl),
                appl_vs_ptfs=appl(ppl) / appl([r.ppl for r in ptfs.releases]) if ptfs else None,
                ppl=ppl,
                ppl_per_version=[r.ppl_per_version for r in run.releases],
                steps_run=run.steps_run,
                store=run.store,
            )
        )
    steps = rows[0].steps_run
    ratios = [r.appl_vs_ptfs for r in rows if r.appl_vs_ptfs is not None]
    versions = range(len(rows[0].ppl))
    keys = [list(d) for d in rows[0].ppl_per_version]
    return ParadigmResult(
        relative_cost=steps / ptfs_steps,
        relative_cost_without_final_tail=(steps - tail) / ptfs_steps
        if name in ("infinite", "path_switching")
        else None,
        steps_run=steps,
        appl=_mean([r.appl for r in rows]),
        appl_std=_std([r.appl for r in rows]),
        appl_vs_ptfs=_mean(ratios) if ratios else None,
        appl_vs_ptfs_std=_std(ratios) if ratios else None,
        ppl=[_mean([r.ppl[i] for r in rows]) for i in versions],
        ppl_std=[_std([r.ppl[i] for r in rows]) for i in versions],
        ppl_per_version=[
            {k: _mean([r.ppl_per_version[i][k] for r in rows]) for k in keys[i]} for i in versions
        ],
        seeds=rows,
    )


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def _std(values: list[float]) -> float:
    """Sample standard deviation; 0.0 for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def write_plots(root: Store, setup: CompareSetup, config: ProjectConfig, result: CompareResult) -> list[str]:
    """Draw the comparison's figures locally, then put them in the comparison folder."""
    paths = {name: runs for name, runs in setup_lr_paths(setup, config).items() if name in result.paradigms}
    title = f"{len(setup.plans)} versions, alpha={setup.alpha:g}, decay={setup.decay} (every paradigm)"
    with tempfile.TemporaryDirectory(prefix="lrpath-compare-") as tmp:
        lr_png, ppl_png, cost_png = (os.path.join(tmp, name) for name in layout.COMPARE_PLOTS)
        plot_comparison(paths, result, lr_png, ppl_png, cost_png, title=title)
        for name, path in zip(layout.COMPARE_PLOTS, (lr_png, ppl_png, cost_png), strict=True):
            with open(path, "rb") as f:
                root.write_bytes(name, f.read())
    return [root.url_of(name) for name in layout.COMPARE_PLOTS]


def _describe(result: CompareResult) -> str:
    c, plan, s = result.config, result.plan, result.settings
    o = c["optimizer"]
    return (
        f"{len(plan['versions'])} versions · alpha {plan['alpha']:g} · decay {plan['decay']} (every paradigm) · "
        f"model {c['model']['preset']} · vocab {c['data']['vocab_size']} · seq {o['seq_len']} · "
        f"batch {o['batch_size']} · lr {o['lr_max']:g}→{o['lr_min']:g} · warm-up {o['warmup_steps']} · "
        f"seeds {', '.join(map(str, result.seeds))} · CPT optimizer {s['cpt_optimizer']} · "
        f"replay {s['replay_fraction']:g} · infinite plateau {s['infinite_plateau_ratio']:g}·η_max, "
        f"cool-down {s['infinite_cooldown']:g}·S_1"
    )


def _pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {std or 0.0:.{digits}f}"


def table_rows(result: CompareResult) -> list[dict[str, Any]]:
    rows = []
    for name, r in result.paradigms.items():
        row: dict[str, Any] = {
            "paradigm": name,
            "steps": r.steps_run,
            "relative cost": round(r.relative_cost, 4),
            "without final tail": "-"
            if r.relative_cost_without_final_tail is None
            else round(r.relative_cost_without_final_tail, 4),
        }
        row.update({f"PPL v{i}": round(p, 3) for i, p in enumerate(r.ppl, start=1)})
        row["APPL"] = _pm(r.appl, r.appl_std)
        row["APPL / PTFS"] = _pm(r.appl_vs_ptfs, r.appl_vs_ptfs_std, 4)
        rows.append(row)
    return rows


def format_table(result: CompareResult) -> str:
    """The results as text: mean PPL of each release, APPL and APPL/PTFS (mean ± std over seeds) and
    cost; then the last release per data version."""
    versions = len(result.plan["versions"])
    head = f"{'paradigm':<15} {'steps':>7} {'rel. cost':>9} {'w/o tail':>8}" + "".join(
        f" {f'v{i} PPL':>9}" for i in range(1, versions + 1)
    )
    lines = [
        _describe(result),
        "",
        f"PPL of release v_i on the validation data of D_1..D_i (token-weighted), mean over {len(result.seeds)} "
        "seed(s); ± is the sample standard deviation over seeds",
        head + f" {'APPL':>17} {'APPL / PTFS':>17}",
    ]
    for name, r in result.paradigms.items():
        cells = "".join(f" {p:>9.3f}" for p in r.ppl)
        without = (
            "-" if r.relative_cost_without_final_tail is None else f"{r.relative_cost_without_final_tail:.3f}"
        )
        lines.append(
            f"{name:<15} {r.steps_run:>7} {r.relative_cost:>9.3f} {without:>8}{cells} "
            f"{_pm(r.appl, r.appl_std):>17} {_pm(r.appl_vs_ptfs, r.appl_vs_ptfs_std, 4):>17}"
        )
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
        "### " + " vs ".join(result.paradigms),
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
        + ", ".join(f"{k} {planned[k]['relative_cost']:.3f}" for k in result.paradigms)
        + ". APPL = mean over releases of each release's PPL; mean ± sample std over seeds.",
    ]
    return "\n".join(lines)
