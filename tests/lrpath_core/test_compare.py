from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrpath_core.compare import compare_paradigms
from lrpath_core.compare_runs import run_path_switching
from lrpath_core.compare_setup import CompareError, prepare_comparison, version_sources
from lrpath_core.errors import LrpathError
from lrpath_core.storage import Store
from lrpath_core.synthetic import write_synthetic_versions
from lrpath_core.timeline import VersionPlan, paradigm_costs, paradigm_steps, plan_versions
from lrpath_core.timeline_store import require_timeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG = b"\x89PNG\r\n\x1a\n"
PARADIGM_KEYS = {"appl", "relative_cost", "ppl", "steps_run", "ppl_per_version"}


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("compare-data")
    write_synthetic_versions(str(root), versions=3, docs_per_version=30, seed=0)
    return str(root)


def test_compare_runs_what_it_planned_and_writes_results_and_plots(tmp_path, three_versions, make_config):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 2})
    result = compare_paradigms(three_versions, str(out), cfg)

    deltas = [p["delta_steps"] for p in result.plan["versions"]]
    plans = plan_versions(
        deltas, cfg.paradigm.alpha, cfg.optimizer.warmup_steps, retain_every=cfg.paradigm.retain_every
    )
    planned, costs = paradigm_steps(plans), paradigm_costs(plans)
    S = [p.cumulative_steps for p in plans]
    assert planned == {
        "ptfs": sum(S),
        "cpt": S[-1],
        "path_switching": S[-1] + sum(p.branch_steps for p in plans),
    }
    for name, r in result.paradigms.items():
        assert r.steps_run == planned[name], name
        assert r.relative_cost == costs[name].relative_cost, name
    assert result.paradigms["ptfs"].relative_cost == 1.0

    # the files: results.json is exactly the returned result, in the documented shape
    saved = json.loads((out / "results.json").read_text())
    assert saved == result.model_dump(mode="json")
    assert set(saved) == {"paradigms", "plan", "config"}
    assert list(saved["paradigms"]) == ["ptfs", "cpt", "path_switching"]
    for name, r in saved["paradigms"].items():
        assert set(r) == PARADIGM_KEYS, name
        assert len(r["ppl"]) == len(r["ppl_per_version"]) == 3
        assert [sorted(d) for d in r["ppl_per_version"]] == [["v1"], ["v1", "v2"], ["v1", "v2", "v3"]]
        assert r["appl"] == pytest.approx(sum(r["ppl"]) / 3)
    assert saved["plan"]["paradigms"]["path_switching"]["total_steps"] == planned["path_switching"]
    assert saved["config"]["optimizer"]["warmup_steps"] == 2
    for name in ("lr_paths.png", "ppl_per_version.png", "cost_vs_appl.png"):
        assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 10_000, name
    assert "path_switching" in (out / "results.txt").read_text()

    # CPT's v1 is PTFS's v1: same data, seed and LR path in another store
    assert result.paradigms["cpt"].ppl[0] == pytest.approx(result.paradigms["ptfs"].ppl[0], rel=1e-6)
    # the path-switching store kept its own timeline; the runner's ledger agrees
    ps = Store(str(out / "path_switching" / "alpha-0.18"))
    timeline = require_timeline(ps)
    assert timeline.steps_run.main == S[-1]
    assert timeline.steps_run.branch == sum(p.branch_steps for p in plans)
    assert [v.metrics["ppl"] for v in timeline.versions] == result.paradigms["path_switching"].ppl

    assert_release_steps_are_their_segments(ps, plans, "cosine")

    # again: nothing trains, the same numbers come back
    counted = dict(timeline.segments)
    assert compare_paradigms(three_versions, str(out), cfg) == result
    assert require_timeline(ps).segments == counted

    # another branch shape in the same folder: new branches on the same main path, same accounting
    linear_cfg = make_config(str(out), **{"optimizer.warmup_steps": 2, "paradigm.decay": "linear"})
    linear = compare_paradigms(three_versions, str(out), linear_cfg)
    assert require_timeline(ps).steps_run.main == S[-1]
    assert main_segments(require_timeline(ps).segments) == main_segments(counted)
    assert_release_steps_are_their_segments(ps, plans, "linear")
    assert (Path(ps.root) / "checkpoints/branches/v3-linear-a0.18").is_dir()
    assert linear.paradigms["path_switching"].steps_run == planned["path_switching"]
    assert linear.paradigms["ptfs"] == result.paradigms["ptfs"]
    assert linear.plan["decay"] == "linear"


def test_changed_settings_or_missing_versions_are_refused(tmp_path, three_versions, make_config):
    with pytest.raises(CompareError, match="has no folder v4/"):
        version_sources(three_versions, 4)
    with pytest.raises(CompareError, match="no version folders"):
        version_sources(str(tmp_path))
    assert [Path(u).name for u in version_sources(three_versions, 2)] == ["v1", "v2"]

    out = tmp_path / "out"
    Store(str(out)).write_json(
        "compare.json", {"data": Store(three_versions).url, "settings_hash": "0", "settings": {}}
    )
    with pytest.raises(CompareError, match="other settings"):
        compare_paradigms(three_versions, str(out), make_config(str(out)))


def test_too_little_data_for_the_warmup_is_refused_before_training(tmp_path, three_versions, make_config):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 20})
    with pytest.raises(LrpathError, match="warm-up"):
        compare_paradigms(three_versions, str(out), cfg, versions=1)
    assert not (out / "ptfs").exists()


class Killed(Exception):
    """Stands in for a process killed in the middle of a segment."""


def test_path_switching_counts_each_segment_once_across_a_kill_and_a_repeat(
    tmp_path, three_versions, make_config
):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 2, "checkpoint_every": 1})
    setup = prepare_comparison(three_versions, str(out), cfg)
    plans = setup.plans
    last = plans[-1]
    # the segments killed below have resume checkpoints before the step they die at
    assert last.fork_step - last.previous_cumulative_steps >= 3 and last.branch_steps >= 3
    reported: dict[str, list[int]] = {}

    def killing(target: str):
        """A progress factory that records every step reported and dies one step before ``target`` ends."""

        def factory(segment: str):
            def progress(done: int, end: int, loss: float, lr: float) -> None:
                reported.setdefault(segment, []).append(done)
                if segment == target and done == end - 1:
                    raise Killed(segment)

            return progress

        return factory

    for target in (f"main-v{last.version}-to-fork", f"branch-v{last.version}"):
        with pytest.raises(Killed):
            run_path_switching(setup, cfg, progress=killing(target))
    # the second call resumed the killed main segment from its newest checkpoint, not from its start
    main_to_fork = reported[f"main-v{last.version}-to-fork"]
    assert main_to_fork.count(last.fork_step - 1) == 2
    assert main_to_fork.count(last.previous_cumulative_steps + 1) == 1

    run = run_path_switching(setup, cfg)
    ps = Store(run.store)
    assert run.steps_run == paradigm_steps(plans)["path_switching"]
    assert [r.steps_run for r in run.releases] == [p.delta_steps + p.branch_steps for p in plans]
    assert_release_steps_are_their_segments(ps, plans, "cosine")
    timeline = require_timeline(ps)
    assert timeline.steps_run.main == last.cumulative_steps
    assert timeline.steps_run.branch == sum(p.branch_steps for p in plans)

    # a repeat trains nothing and counts nothing again
    again = run_path_switching(setup, cfg)
    assert again.releases == run.releases
    assert require_timeline(ps).segments == timeline.segments


def main_segments(segments: dict[str, int]) -> dict[str, int]:
    return {key: steps for key, steps in segments.items() if key.startswith("main:")}


def assert_release_steps_are_their_segments(ps: Store, plans: list[VersionPlan], decay: str) -> None:
    """Each release's steps_run is the sum of its version's entries in ``timeline.segments``
    (keyed ``path:run:start-end``): the main segments within S_{i-1}..S_i and its own branch."""
    timeline = require_timeline(ps)
    saved = json.loads((Path(ps.root) / f"run-{decay}.json").read_text())
    for plan, release in zip(plans, saved["releases"], strict=True):
        total = 0
        for key, steps in timeline.segments.items():
            path, run, span = key.split(":")
            start, end = (int(s) for s in span.split("-"))
            assert steps == end - start, key
            if path == "main" and plan.previous_cumulative_steps <= start and end <= plan.cumulative_steps:
                total += steps
            elif path == "branch" and run.endswith(f"/v{plan.version}-{decay}-a{timeline.alpha:g}"):
                total += steps
        assert release["steps_run"] == total == plan.delta_steps + plan.branch_steps, plan.version
