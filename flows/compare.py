"""``compare-paradigms``: PTFS vs CPT vs path switching on the same data (DESIGN.md §1).

prepare (shared data store, plan) ─┬─► PTFS ────────────┐
                                   ├─► CPT ─────────────┼─► report (results.json, plots, artifacts)
                                   └─► path switching ──┘
"""

from __future__ import annotations

import base64
import contextlib
import threading

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from lrpath_core import layout
from lrpath_core.compare_report import ORDER, format_table, markdown_report, summarize, table_rows
from lrpath_core.compare_result import CompareResult
from lrpath_core.compare_runs import ParadigmRun, run_cpt, run_path_switching, run_ptfs
from lrpath_core.compare_setup import CompareSetup, compare_config, prepare_comparison
from lrpath_core.config import CompareSettings, ModelConfig, ProjectConfig
from lrpath_core.plots import LABELS
from lrpath_core.storage import Store
from lrpath_core.timeline import Paradigm
from tasks.progress import SegmentProgress
from tasks.training import gpu_slot

RUNS = {"ptfs": run_ptfs, "cpt": run_cpt, "path_switching": run_path_switching}
_ONE_AT_A_TIME = threading.Lock()


@contextlib.contextmanager
def training_slot():
    """One paradigm trains at a time per process, and holds the ``gpu`` slot on a server.

    Submitted tasks run in threads of one process: they share the device and torch's global RNG,
    which model init seeds, so concurrent runs would neither be faster nor reproducible.
    """
    with _ONE_AT_A_TIME, gpu_slot():
        yield


@task(name="compare-prepare", cache_policy=NONE)
def prepare(data: str, out: str, config: ProjectConfig, versions: int | None) -> CompareSetup:
    """Ingest the versions into the shared data store and plan them."""
    return prepare_comparison(data, out, config, versions)


@task(name="compare-train", task_run_name="train-{paradigm}", cache_policy=NONE)
def train_paradigm(paradigm: Paradigm, setup: CompareSetup, config: ProjectConfig) -> ParadigmRun:
    """Every release of one paradigm, evaluated on every version seen so far."""
    prefix = paradigm.replace("_", "-")

    def progress(segment: str) -> SegmentProgress:
        return SegmentProgress(f"{prefix}-{segment}", f"{LABELS[paradigm]}: segment {segment}")

    with training_slot():
        return RUNS[paradigm](setup, config, progress=progress)


@task(name="compare-report", cache_policy=NONE)
def report(setup: CompareSetup, config: ProjectConfig, runs: dict[Paradigm, ParadigmRun]) -> CompareResult:
    """Check the costs, write results.json and the plots, post a table and a markdown artifact."""
    result = summarize(setup, config, runs)
    best = min(result.paradigms.items(), key=lambda item: item[1].appl)[0]
    create_table_artifact(
        table_rows(result),
        key="compare-paradigms",
        description=f"PPL per release, APPL and relative cost (lowest APPL: {best})",
    )
    markdown = markdown_report(result) + f"\n\nFiles: `{setup.out}` (results.json, results.txt, plots)"
    store = Store(setup.out)
    if store.is_local:
        _, ppl_png, cost_png = layout.COMPARE_PLOTS
        for name in (cost_png, ppl_png):
            encoded = base64.b64encode(store.read_bytes(name)).decode()
            markdown += f"\n\n![{name}](data:image/png;base64,{encoded})"
    create_markdown_artifact(markdown, key="compare-paradigms-report")
    return result


# the parameters are `lrpath compare`'s (None: the config's default), so a deployment run is a CLI run
@flow(name="compare-paradigms", log_prints=True)
def compare_paradigms(
    data: str,
    out: str,
    model: str | None = None,
    quick: bool | None = None,
    versions: int | None = None,
    alpha: float | None = None,
    decay: str | None = None,
    seed: int | None = None,
    config_path: str | None = None,
) -> dict:
    """PTFS, CPT and path switching on the same versions; returns results.json's content.

    ``model`` is a preset (default ``ModelConfig.preset``'s); ``quick`` sizes the data for a CPU (the
    configuration's default vocab, seq_len and batch_size) whatever the preset; ``config_path``
    (an lrpath.yaml) replaces those sizes. ``alpha``, ``decay`` and ``seed`` override the
    configuration when given. Re-running resumes; another ``alpha`` or ``decay`` in the same
    ``out`` re-runs path switching only.
    """
    config = compare_config(
        out,
        model=model or ModelConfig().preset,
        quick=CompareSettings().quick if quick is None else quick,
        alpha=alpha,
        decay=decay,
        seed=seed,
        config_path=config_path,
    )
    setup = prepare(data, out, config, versions)
    futures = {p: train_paradigm.submit(p, setup, config) for p in ORDER}
    result = report(setup, config, {p: f.result() for p, f in futures.items()})
    print(format_table(result))
    return result.model_dump(mode="json")
