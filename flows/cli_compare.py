"""``lrpath compare``: PTFS vs CPT vs path switching on the same data, straight through the core.

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
    config: str | None = typer.Option(
        None, "--config", help="lrpath.yaml to start from (its sizes are kept; the options above override)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print exactly one JSON object: results.json"),
) -> None:
    """PTFS vs CPT vs path switching on the same data: PPL per version, APPL, cost."""
    from lrpath_core.compare import compare_paradigms
    from lrpath_core.compare_report import format_table
    from lrpath_core.compare_setup import compare_config

    project = compare_config(
        out, model=model, quick=quick, alpha=alpha, decay=decay, seed=seed, config_path=config
    )
    result = compare_paradigms(
        data, out, project, versions=versions, progress_bar=not json_out and sys.stderr.isatty()
    )
    if json_out:
        print(json.dumps(result.model_dump(mode="json")))
        return
    print(format_table(result))
    print(f"\nwrote results.json, results.txt, lr_paths.png, ppl_per_version.png, cost_vs_appl.png to {out}")
