"""Every paradigm on the same data, tokenizer, model, batch, LRs, warm-up, decay shape and seeds.

Layout under ``out`` (paths in :mod:`lrpath_core.layout`)::

    seed-{s}/                    one seed's runs (optimizer.seed = s: init, data order, validation split)
      compare.json               the data and settings this seed's folder was made with (a resume must match)
      data/                      shared data store: tokenizer (trained on v1), token cache, data/v{i}
      ptfs/{decay}/v{i}/         PTFS of version i: from scratch, global shuffle of D_1..D_i, S_i steps
      cpt/{keep|reset}/{decay}/  CPT: v1 = PTFS v1, then from v_{i-1}'s release, ΔT_i steps
      cpt_replay/{keep|reset}-r{f}/{decay}/   CPT whose updates replay a fraction f of earlier data
      wsd_s/alpha-{α}/{decay}/   WSD-S: one trajectory, a decay at the end of each version
      infinite/alpha-{α}-plateau-{r}-cooldown-{c}/   main path at a plateau, an anneal per release
      path_switching/alpha-{α}/  a store with its own timeline: main path + branches (lrpath_core.pipeline)
    results.json  results.txt  lr_paths.png  ppl_per_version.png  cost_vs_appl.png

Equal terms: one ``paradigm.decay`` shape is every paradigm's decay (PTFS's, CPT's, the
branches', the anneals'), so every run folder that depends on the shape is keyed by it. The
paradigm stores share nothing but the seed's tokenizer and data: most get copies of the data
store's tokenizer and versions; the path-switching store gets the tokenizer and the token cache
and ingests the versions itself (every shard a cache hit, so the same blocks), which gives it
the timeline the pipeline's functions work on unchanged.

Setup: :mod:`lrpath_core.compare_setup`; the runs: :mod:`lrpath_core.compare_runs` (path
switching), :mod:`lrpath_core.compare_baselines` (PTFS, CPT, CPT with replay),
:mod:`lrpath_core.compare_related` (WSD-S, infinite); results: :mod:`lrpath_core.compare_report`;
figures: :mod:`lrpath_core.plots`.
"""

from __future__ import annotations

from collections.abc import Callable

from lrpath_core.compare_baselines import run_cpt, run_cpt_replay, run_ptfs
from lrpath_core.compare_related import run_infinite, run_wsd_s
from lrpath_core.compare_report import SeedRuns, summarize
from lrpath_core.compare_result import CompareResult
from lrpath_core.compare_runs import ParadigmRun, ProgressFactory, run_path_switching
from lrpath_core.compare_setup import CompareSetup, parse_paradigms, prepare_comparison, seeded
from lrpath_core.config import CompareSettings, ProjectConfig
from lrpath_core.timeline import Paradigm

RunFn = Callable[[CompareSetup, ProjectConfig, bool, ProgressFactory | None], ParadigmRun]
RUNS: dict[Paradigm, RunFn] = {
    "ptfs": run_ptfs,
    "cpt": run_cpt,
    "cpt_replay": run_cpt_replay,
    "wsd_s": run_wsd_s,
    "infinite": run_infinite,
    "path_switching": run_path_switching,
}


def compare_seeds(config: ProjectConfig, settings: CompareSettings) -> list[int]:
    """The seeds a comparison runs: ``settings.seeds``, else the configuration's ``optimizer.seed``."""
    return settings.seeds or [config.optimizer.seed]


def compare_paradigms(
    data: str,
    out: str,
    config: ProjectConfig,
    versions: int | None = None,
    progress_bar: bool = False,
    settings: CompareSettings | None = None,
) -> CompareResult:
    """Run ``settings.paradigms`` for every seed on ``data``'s versions; write the comparison to ``out``.

    Resumable: finished segments and evaluations are found and reused, a half-done segment
    resumes from its newest checkpoint; another seed, shape or α re-runs only what depends on it.
    """
    settings = settings or CompareSettings()
    names = parse_paradigms(settings.paradigms)
    setups: list[CompareSetup] = []
    runs: SeedRuns = {}
    for seed in compare_seeds(config, settings):
        seed_config = seeded(config, seed)
        setup = prepare_comparison(data, out, seed_config, versions, settings)
        setups.append(setup)
        runs[seed] = {name: RUNS[name](setup, seed_config, progress_bar, None) for name in names}
    return summarize(setups, config, runs)
