from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from lrpath_core.checkpoint import read_checkpoint
from lrpath_core.compare import compare_paradigms
from lrpath_core.compare_runs import release_steps, run_path_switching
from lrpath_core.compare_setup import (
    CompareError,
    compare_settings,
    parse_paradigms,
    prepare_comparison,
    version_sources,
)
from lrpath_core.errors import LrpathError
from lrpath_core.pipeline import Branch
from lrpath_core.schedules import ptfs_lr
from lrpath_core.storage import Store
from lrpath_core.synthetic import write_synthetic_versions
from lrpath_core.timeline import (
    CheckpointRef,
    Timeline,
    VersionPlan,
    VersionRecord,
    paradigm_steps,
    plan_versions,
)
from lrpath_core.timeline_store import require_timeline, update_timeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG = b"\x89PNG\r\n\x1a\n"
ALL = "ptfs,cpt,cpt-replay,wsd-s,infinite,path-switching"
PARADIGM_KEYS = {
    "relative_cost",
    "relative_cost_without_final_tail",
    "steps_run",
    "appl",
    "appl_std",
    "appl_vs_ptfs",
    "appl_vs_ptfs_std",
    "ppl",
    "ppl_std",
    "ppl_per_version",
    "seeds",
}


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("compare-data")
    write_synthetic_versions(str(root), versions=3, docs_per_version=30, seed=0)
    return str(root)


def test_every_paradigm_per_seed_runs_what_it_planned_and_writes_results_and_plots(
    tmp_path, three_versions, make_config
):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 2})
    result = compare_paradigms(three_versions, str(out), cfg, settings=compare_settings(ALL, "0,1"))

    deltas = [p["delta_steps"] for p in result.plan["versions"]]
    plans = plan_versions(
        deltas, cfg.paradigm.alpha, cfg.optimizer.warmup_steps, retain_every=cfg.paradigm.retain_every
    )
    S = [p.cumulative_steps for p in plans]
    branched = S[-1] + sum(p.branch_steps for p in plans)
    expected = {
        "ptfs": sum(S),
        "cpt": S[-1],
        "cpt_replay": S[-1],
        "wsd_s": S[-1],
        "infinite": branched,
        "path_switching": branched,
    }
    assert paradigm_steps(plans) == expected
    tail = S[-1] - max(plans[-1].fork_step, S[-2])

    # results.json is exactly the returned result, in the documented shape
    saved = json.loads((out / "results.json").read_text())
    assert saved == result.model_dump(mode="json")
    assert set(saved) == {"paradigms", "seeds", "settings", "plan", "config"}
    assert saved["seeds"] == [0, 1]
    assert list(saved["paradigms"]) == ["ptfs", "cpt", "cpt_replay", "wsd_s", "infinite", "path_switching"]
    for name, r in saved["paradigms"].items():
        assert set(r) == PARADIGM_KEYS, name
        assert [s["seed"] for s in r["seeds"]] == [0, 1]
        # each seed's steps are counted from its run (loss logs / timeline.segments), and match the plan
        assert [s["steps_run"] for s in r["seeds"]] == [expected[name]] * 2, name
        assert r["relative_cost"] == expected[name] / expected["ptfs"], name
        if name in ("infinite", "path_switching"):
            assert r["relative_cost_without_final_tail"] == (expected[name] - tail) / expected["ptfs"]
        else:
            assert r["relative_cost_without_final_tail"] is None
        assert len(r["ppl"]) == len(r["ppl_std"]) == len(r["ppl_per_version"]) == 3
        assert [sorted(d) for d in r["ppl_per_version"]] == [["v1"], ["v1", "v2"], ["v1", "v2", "v3"]]
        appls = [s["appl"] for s in r["seeds"]]
        assert all(s["appl"] == pytest.approx(sum(s["ppl"]) / 3) for s in r["seeds"])
        assert r["appl"] == pytest.approx(statistics.fmean(appls))
        assert r["appl_std"] == pytest.approx(statistics.stdev(appls)) and r["appl_std"] > 0
        ratios = [
            s["appl"] / p["appl"]
            for s, p in zip(r["seeds"], saved["paradigms"]["ptfs"]["seeds"], strict=True)
        ]
        assert r["appl_vs_ptfs"] == pytest.approx(statistics.fmean(ratios))
        assert r["ppl"][2] == pytest.approx(statistics.fmean(s["ppl"][2] for s in r["seeds"]))
    assert saved["plan"]["paradigms"]["wsd_s"]["total_steps"] == expected["wsd_s"]
    assert saved["config"]["optimizer"]["warmup_steps"] == 2
    for name in ("lr_paths.png", "ppl_per_version.png", "cost_vs_appl.png"):
        assert (out / name).read_bytes()[:8] == PNG and (out / name).stat().st_size > 10_000, name
    table = (out / "results.txt").read_text()
    assert all(name in table for name in saved["paradigms"]) and " ± " in table

    for seed in (0, 1):
        ps_runs = {n: result.paradigms[n].seeds[seed] for n in result.paradigms}
        # CPT's (and CPT + replay's) v1 is PTFS's v1: same data, seed and LR path in another store
        for name in ("cpt", "cpt_replay"):
            assert ps_runs[name].ppl[0] == pytest.approx(ps_runs["ptfs"].ppl[0], rel=1e-6)
        root = out / f"seed-{seed}"
        # every baseline's folder is keyed by the decay shape
        for rel in (
            "ptfs/cosine",
            "cpt/keep/cosine",
            "cpt_replay/keep-r0.05/cosine",
            "wsd_s/alpha-0.18/cosine",
        ):
            assert (root / rel / "v1" if "wsd" not in rel else root / rel / "trajectory").is_dir(), rel
        # replay: 5% of each update's blocks come from earlier versions, the block count is unchanged
        replay = root / "cpt_replay/keep-r0.05/cosine"
        for v in (2, 3):
            mixed = np.load(replay / f"data/v{v}/train.npy")
            plain = np.load(root / f"data/data/v{v}/train.npy")
            record = json.loads((replay / f"data/v{v}/replay.json").read_text())
            assert mixed.shape == plain.shape and record["replayed"] == round(0.05 * len(plain)) > 0
            new_rows = {row.tobytes() for row in plain}
            assert sum(row.tobytes() not in new_rows for row in mixed) == record["replayed"]
        # path switching's store kept its own timeline; the runner's ledger agrees
        ps = Store(str(root / "path_switching" / "alpha-0.18"))
        timeline = require_timeline(ps)
        assert timeline.steps_run.main == S[-1]
        assert [v.metrics["ppl"] for v in timeline.versions] == ps_runs["path_switching"].ppl
        assert_release_steps_are_their_segments(ps, plans, "cosine")
    assert result.paradigms["ptfs"].seeds[0].appl != result.paradigms["ptfs"].seeds[1].appl

    # again: nothing trains, the same numbers come back
    logs = {p: p.stat().st_mtime_ns for p in out.rglob("losses.json")}
    assert compare_paradigms(three_versions, str(out), cfg, settings=compare_settings(ALL, "0,1")) == result
    assert {p: p.stat().st_mtime_ns for p in out.rglob("losses.json")} == logs


def test_cpt_keeps_the_optimizer_state_unless_reset_and_every_paradigm_uses_the_one_shape(
    tmp_path, three_versions, make_config
):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 2})
    keep = compare_paradigms(three_versions, str(out), cfg, 2, settings=compare_settings("ptfs,cpt"))
    reset = compare_paradigms(
        three_versions, str(out), cfg, 2, settings=compare_settings("cpt", cpt_optimizer="reset")
    )
    root = out / "seed-1234"
    S = [p["cumulative_steps"] for p in keep.plan["versions"]]
    states = {}
    for variant in ("keep", "reset"):
        store = Store(str(root / "cpt" / variant / "cosine"))
        state, _, optimizer, _ = read_checkpoint(store, f"v2/step-{S[1]:08d}")
        assert state.step == S[1]
        states[variant] = optimizer["state"]
    # AdamW's step count: kept, it went on from v1's release; reset, it counts v2's steps only
    assert {float(s["step"]) for s in states["keep"].values()} == {S[1]}
    assert {float(s["step"]) for s in states["reset"].values()} == {S[1] - S[0]}
    assert keep.paradigms["cpt"].ppl[0] == reset.paradigms["cpt"].ppl[0]
    assert keep.paradigms["cpt"].ppl[1] != reset.paradigms["cpt"].ppl[1]
    assert reset.settings["cpt_optimizer"] == "reset" and list(reset.paradigms) == ["cpt"]

    # equal terms: a 1-sqrt comparison trains a 1-sqrt PTFS in its own folder, not the cosine one
    sqrt_cfg = make_config(str(out), **{"optimizer.warmup_steps": 2, "paradigm.decay": "1-sqrt"})
    sqrt = compare_paradigms(three_versions, str(out), sqrt_cfg, 2, settings=compare_settings("ptfs"))
    o = sqrt_cfg.optimizer
    for shape in ("cosine", "1-sqrt"):
        rows = json.loads((root / "ptfs" / shape / "v2" / "losses.json").read_text())
        assert [step for step, _, _ in rows] == list(range(S[1]))
        assert [lr for _, _, lr in rows] == [
            ptfs_lr(step, S[1], o.lr_max, o.lr_min, o.warmup_steps, shape) for step in range(S[1])
        ]
    assert sqrt.paradigms["ptfs"].ppl != keep.paradigms["ptfs"].ppl
    assert sqrt.plan["decay"] == "1-sqrt"


def test_paradigm_names_take_hyphens_or_underscores_and_unknown_ones_are_refused():
    assert parse_paradigms("path-switching, ptfs,cpt_replay,ptfs") == ["ptfs", "cpt_replay", "path_switching"]
    with pytest.raises(CompareError) as raised:
        parse_paradigms("ptfs,cosine")
    assert str(raised.value) == (
        "unknown paradigm 'cosine': choose from ptfs, cpt, cpt-replay, wsd-s, infinite, path-switching "
        "(hyphens or underscores)"
    )
    with pytest.raises(CompareError, match="comma-separated list of integers"):
        compare_settings(seeds="0,one")


def test_changed_settings_or_missing_versions_are_refused(tmp_path, three_versions, make_config):
    with pytest.raises(CompareError, match="has no folder v4/"):
        version_sources(three_versions, 4)
    with pytest.raises(CompareError, match="no version folders"):
        version_sources(str(tmp_path))
    assert [Path(u).name for u in version_sources(three_versions, 2)] == ["v1", "v2"]

    out = tmp_path / "out"
    Store(str(out / "seed-1234")).write_json(
        "compare.json", {"data": Store(three_versions).url, "settings_hash": "0", "settings": {}}
    )
    with pytest.raises(CompareError, match="other settings"):
        compare_paradigms(three_versions, str(out), make_config(str(out)))


def test_too_little_data_for_the_warmup_is_refused_before_training(tmp_path, three_versions, make_config):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 20})
    with pytest.raises(LrpathError, match="warm-up"):
        compare_paradigms(three_versions, str(out), cfg, versions=1)
    assert not (out / "seed-1234" / "ptfs").exists()


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


def test_release_steps_when_the_fork_is_before_the_previous_version_end(tmp_path):
    """An unequal split's last update (S_3 = 212, S_4 = 256, B_4 = 56) forks at the retained step 200,
    before S_3: its main path ran 212 → 256 in one segment. From a GCIDE run that failed with "no step
    count for segment main:checkpoints/main:200-256"."""
    store = Store(str(tmp_path / "ps"))
    ends = [(125, 23, 102), (169, 31, 138), (212, 39, 173), (256, 56, 200)]
    versions, previous = [], 0
    for number, (end, branch_steps, fork) in enumerate(ends, start=1):
        versions.append(
            VersionRecord(
                version=number,
                name=f"v{number}",
                delta_steps=end - previous,
                cumulative_steps=end,
                branch_steps=branch_steps,
                fork_step=fork,
            )
        )
        previous = end
    segments = {
        "main:checkpoints/main:212-256": 44,
        "branch:checkpoints/branches/v4-cosine-a0.18:200-256": 56,
    }
    timeline = Timeline(config_hash="x", alpha=0.18, decay="cosine", versions=versions, segments=segments)
    update_timeline(store, lambda _: timeline)
    branch = Branch(
        version=4,
        checkpoint=CheckpointRef(url="unused", step=256),
        decay="cosine",
        alpha=0.18,
        fork_step=200,
        branch_steps=56,
    )
    assert release_steps(store, branch) == 44 + 56
