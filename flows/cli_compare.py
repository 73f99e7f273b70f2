"""``lrpath compare``: every paradigm (PTFS, CPT, CPT + replay, WSD-S, infinite, path switching) on the
same data, per seed, straight through the core.

The command needs no Prefect (the ``compare-paradigms`` flow is for the deployment).
"""

from __future__ import annotations

import json
import sys

import typer

from flows.cli_options import config_option
from lrpath_core.config import CompareSettings, DecayShape


def compare(
    data: str = typer.Option(..., help="folder or fsspec URL holding v1/, v2/, ... (shards)"),
    out: str = typer.Option(..., help="folder or fsspec URL for the runs, results.json and plots"),
    versions: int | None = config_option("versions", model=CompareSettings),
    model: str = config_option("model.preset", "--model"),
    alpha: float | None = config_option("paradigm.alpha", override=True),
    decay: DecayShape | None = config_option("paradigm.decay", override=True),
    seed: int | None = config_option("optimizer.seed", override=True),
    quick: bool = config_option("quick", "--quick", model=CompareSettings),
    paradigms: str | None = typer.Option(
        None,
        "--paradigms",
        help="comma list of ptfs, cpt, cpt-replay, wsd-s, infinite, path-switching (hyphens or "
        "underscores) [default: all; CompareSettings.paradigms]",
    ),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="comma list of seeds, e.g. 0,1,2: every paradigm once per seed, mean ± std reported "
        "[default: --seed / optimizer.seed; CompareSettings.seeds]",
    ),
    cpt_optimizer: str | None = config_option(
        "cpt_optimizer", "--cpt-optimizer", model=CompareSettings, override=True
    ),
    replay_fraction: float | None = config_option(
        "replay_fraction", "--replay-fraction", model=CompareSettings, override=True
    ),
    study: str | None = typer.Option(
        None,
        "--study",
        help="run one of the paper's stage studies instead: first-stage (main-path LR ×0.5/1/2), "
        "second-stage (α × decay shape) or versions (V = 2..8 from one corpus split); writes "
        "studies/{study}.png and .json under --out",
    ),
    config: str | None = typer.Option(
        None, "--config", help="lrpath.yaml to start from (its sizes are kept; the options above override)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print exactly one JSON object: results.json"),
) -> None:
    """Every paradigm on the same data: PPL per version, APPL (mean ± std over seeds), cost."""
    from lrpath_core.compare import compare_paradigms
    from lrpath_core.compare_report import format_table
    from lrpath_core.compare_setup import compare_config, compare_settings

    settings = compare_settings(
        paradigms, seeds, cpt_optimizer=cpt_optimizer, replay_fraction=replay_fraction
    )
    project = compare_config(
        out, model=model, quick=quick, alpha=alpha, decay=decay, seed=seed, config_path=config
    )
    if study is not None:
        from lrpath_core.compare_study import run_study

        done = run_study(study, data, out, project, settings, versions, not json_out and sys.stderr.isatty())
        if json_out:
            print(json.dumps(done.model_dump(mode="json")))
            return
        for p in done.points:
            print(
                f"{p.label:<24} {p.paradigm:<15} V={p.versions}  cost {p.relative_cost:.3f}  APPL {p.appl:.3f} ± {p.appl_std:.3f}"
            )
        print(f"\nwrote {done.plot}")
        return
    result = compare_paradigms(
        data,
        out,
        project,
        versions=versions,
        progress_bar=not json_out and sys.stderr.isatty(),
        settings=settings,
    )
    if json_out:
        print(json.dumps(result.model_dump(mode="json")))
        return
    print(format_table(result))
    print(f"\nwrote results.json, results.txt, lr_paths.png, ppl_per_version.png, cost_vs_appl.png to {out}")
