"""PTFS vs CPT vs path switching on the same data, tokenizer, model, batch, LRs, warm-up and seed.

Layout under ``out`` (paths in :mod:`lrpath_core.layout`)::

    data/                        shared data store: tokenizer (trained on v1), token cache, data/v{i}
    ptfs/v{i}/                   PTFS run of version i: from scratch, global shuffle of D_1..D_i, S_i steps
    cpt/v{i}/                    CPT run of version i: v1 = PTFS v1, then from v_{i-1}'s release, ΔT_i steps
    path_switching/alpha-{α}/    a store with its own timeline: main path + branches (lrpath_core.pipeline)
    compare.json                 the data and settings this folder was made with (a resume must match)
    results.json  results.txt  lr_paths.png  ppl_per_version.png  cost_vs_appl.png

The paradigm stores share nothing but the tokenizer and the data: PTFS and CPT get copies of the
data store's tokenizer and versions; the path-switching store gets the tokenizer and the token
cache and ingests the versions itself (every shard a cache hit, so the same blocks), which gives
it the timeline the pipeline's functions work on unchanged. Decay shapes of one α share that
store's main path and differ only in their branches, as ``rerun-branch`` does; PTFS and CPT do
not depend on α or the branch shape, so a sweep over those re-runs path switching only.

Setup: :mod:`lrpath_core.compare_setup`; the runs: :mod:`lrpath_core.compare_runs`; results:
:mod:`lrpath_core.compare_report`; figures: :mod:`lrpath_core.plots`.
"""

from __future__ import annotations

from lrpath_core.compare_report import summarize
from lrpath_core.compare_result import CompareResult
from lrpath_core.compare_runs import run_cpt, run_path_switching, run_ptfs
from lrpath_core.compare_setup import prepare_comparison
from lrpath_core.config import ProjectConfig


def compare_paradigms(
    data: str,
    out: str,
    config: ProjectConfig,
    versions: int | None = None,
    progress_bar: bool = False,
) -> CompareResult:
    """Run PTFS, CPT and path switching on ``data``'s versions and write the comparison to ``out``.

    Resumable: finished segments and evaluations are found and reused, a half-done segment
    resumes from its newest checkpoint. Another ``paradigm.alpha``/``paradigm.decay`` in the same
    ``out`` re-runs path switching only.
    """
    setup = prepare_comparison(data, out, config, versions)
    runs = {
        "ptfs": run_ptfs(setup, config, progress_bar),
        "cpt": run_cpt(setup, config, progress_bar),
        "path_switching": run_path_switching(setup, config, progress_bar),
    }
    return summarize(setup, config, runs)
