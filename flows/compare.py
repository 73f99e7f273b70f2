"""``compare-paradigms``: every paradigm on the same data, per seed (DESIGN.md §1, docs/method.md).

per seed s: prepare s (shared data store, plan) ─┬─► PTFS s ────────────┐
                                                 ├─► CPT s ─────────────┤
                                                 ├─► CPT + replay s ────┤
                                                 ├─► WSD-S s ───────────┼─► report (results.json, plots, artifacts)
                                                 ├─► infinite s ────────┤
                                                 └─► path switching s ──┘
"""

from __future__ import annotations

import base64
import contextlib
import threading

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from lrpath_core import layout
from lrpath_core.compare import RUNS, compare_seeds
from lrpath_core.compare_report import SeedRuns, format_table, markdown_report, summarize, table_rows
from lrpath_core.compare_result import CompareResult
from lrpath_core.compare_runs import ParadigmRun
from lrpath_core.compare_setup import (
    CompareSetup,
    compare_config,
    compare_settings,
    parse_paradigms,
    prepare_comparison,
    seeded,
)
from lrpath_core.config import CompareSettings, ModelConfig, ProjectConfig
from lrpath_core.plots import LABELS
from lrpath_core.storage import Store
from lrpath_core.timeline import Paradigm
from tasks.progress import SegmentProgress
from tasks.training import gpu_slot

_ONE_AT_A_TIME = threading.Lock()


@contextlib.contextmanager
def training_slot():
    """One paradigm trains at a time per process, and holds the ``gpu`` slot on a server.

    Submitted tasks run in threads of one process: they share the device and torch's global RNG,
    which model init seeds, so concurrent runs would neither be faster nor reproducible.
    """
    with _ONE_AT_A_TIME, gpu_slot():
        yield


@task(name="compare-prepare", task_run_name="prepare-seed-{config.optimizer.seed}", cache_policy=NONE)
def prepare(
    data: str, out: str, config: ProjectConfig, versions: int | None, settings: CompareSettings
) -> CompareSetup:
    """Ingest the versions into the seed's shared data store and plan them."""
    return prepare_comparison(data, out, config, versions, settings)


@task(name="compare-train", task_run_name="train-{paradigm}-seed-{setup.seed}", cache_policy=NONE)
def train_paradigm(paradigm: Paradigm, setup: CompareSetup, config: ProjectConfig) -> ParadigmRun:
    """Every release of one paradigm for one seed, evaluated on every version seen so far."""
    prefix = f"{paradigm.replace('_', '-')}-seed-{setup.seed}"

    def progress(segment: str) -> SegmentProgress:
        return SegmentProgress(
            f"{prefix}-{segment}", f"{LABELS[paradigm]} (seed {setup.seed}): segment {segment}"
        )

    with training_slot():
        return RUNS[paradigm](setup, config, False, progress)


@task(name="compare-report", cache_policy=NONE)
def report(setups: list[CompareSetup], config: ProjectConfig, runs: SeedRuns) -> CompareResult:
    """Check the costs, write results.json and the plots, post a table and a markdown artifact."""
    result = summarize(setups, config, runs)
    best = min(result.paradigms.items(), key=lambda item: item[1].appl)[0]
    create_table_artifact(
        table_rows(result),
        key="compare-paradigms",
        description=f"PPL per release, APPL (mean ± std over seeds) and relative cost (lowest APPL: {best})",
    )
    out = setups[0].out
    markdown = markdown_report(result) + f"\n\nFiles: `{out}` (results.json, results.txt, plots)"
    store = Store(out)
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
    paradigms: str | list[str] | None = None,
    seeds: str | list[int] | None = None,
    cpt_optimizer: str | None = None,
    replay_fraction: float | None = None,
) -> dict:
    """Every paradigm (or ``paradigms``) per seed on the same versions; returns results.json's content.

    ``model`` is a preset (default ``ModelConfig.preset``'s); ``quick`` sizes the data for a CPU (the
    configuration's default vocab, seq_len and batch_size) whatever the preset; ``config_path``
    (an lrpath.yaml) replaces those sizes. ``alpha``, ``decay`` and ``seed`` override the
    configuration when given; ``seeds`` (``0,1,2``) runs every paradigm once per seed. Each
    paradigm × seed is a task. Re-running resumes; another ``alpha`` or ``decay`` in the same
    ``out`` re-runs only what depends on it.
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
    settings = compare_settings(
        paradigms, seeds, cpt_optimizer=cpt_optimizer, replay_fraction=replay_fraction
    )
    names = parse_paradigms(settings.paradigms)
    # one seed's data at a time (ingest trains a tokenizer); the training tasks then run as slots allow
    seeds = compare_seeds(config, settings)
    setups = {s: prepare(data, out, seeded(config, s), versions, settings) for s in seeds}
    futures = {
        s: {p: train_paradigm.submit(p, setup, seeded(config, s)) for p in names}
        for s, setup in setups.items()
    }
    runs = {s: {p: f.result() for p, f in by_name.items()} for s, by_name in futures.items()}
    result = report(list(setups.values()), config, runs)
    print(format_table(result))
    return result.model_dump(mode="json")
