from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrpath_core.compare import CompareError, compare_paradigms, version_sources
from lrpath_core.pipeline import require_timeline
from lrpath_core.storage import Store
from lrpath_core.synthetic import write_synthetic_versions
from lrpath_core.timeline import paradigm_costs, paradigm_steps, plan_versions

PNG = b"\x89PNG\r\n\x1a\n"
PARADIGM_KEYS = {"appl", "relative_cost", "ppl", "steps_run", "ppl_per_version"}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and lose 10x when another job holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    plans = plan_versions(deltas, cfg.paradigm.alpha, cfg.optimizer.warmup_steps)
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

    # again: nothing trains, the same numbers come back
    counted = (Path(ps.root) / "main_steps.json").read_text()
    assert compare_paradigms(three_versions, str(out), cfg) == result

    # another branch shape in the same folder: new branches on the same main path, same accounting
    linear_cfg = make_config(str(out), **{"optimizer.warmup_steps": 2, "paradigm.decay": "linear"})
    linear = compare_paradigms(three_versions, str(out), linear_cfg)
    assert require_timeline(ps).steps_run.main == S[-1]
    assert (Path(ps.root) / "main_steps.json").read_text() == counted
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
    with pytest.raises(ValueError, match="warm-up"):
        compare_paradigms(three_versions, str(out), cfg, versions=1)
    assert not (out / "ptfs").exists()
