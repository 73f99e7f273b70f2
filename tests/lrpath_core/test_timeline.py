import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpath_core.planner import PlanRequest, make_plan
from lrpath_core.timeline import (
    PARADIGMS,
    PlanError,
    Timeline,
    TimelineError,
    VersionRecord,
    branch_length,
    equal_increment_relative_cost,
    final_tail_steps,
    lr_paths,
    paradigm_costs,
    plan_versions,
    retained_checkpoints,
)


def test_paper_headline_four_versions_at_58_percent():
    costs = paradigm_costs(plan_versions([1000] * 4, alpha=0.18, retain_every=50))
    assert costs["path_switching"].total_steps == 5800
    assert costs["ptfs"].total_steps == 10000
    assert costs["path_switching"].relative_cost == pytest.approx(0.58)
    assert costs["cpt"].relative_cost == pytest.approx(0.4)


def test_branch_length_does_not_round_float_noise_up():
    assert 0.07 * 100 > 7  # the float noise this guards against
    assert branch_length(0.07, 100) == 7
    assert branch_length(0.18, 1000) == 180
    assert branch_length(0.18, 1001) == 181


@given(versions=st.integers(1, 12), k=st.integers(50, 5000), alpha=st.floats(0.01, 0.99))
@settings(max_examples=100)
def test_closed_form_holds_while_no_fork_is_clamped(versions, k, alpha):
    plans = plan_versions([k] * versions, alpha, retain_every=None)
    costs = paradigm_costs(plans)
    if not any(p.fork_clamped for p in plans):
        # ceil() adds at most one step per version over the closed form
        exact = equal_increment_relative_cost(versions, alpha)
        slack = versions / costs["ptfs"].total_steps
        assert exact - 1e-12 <= costs["path_switching"].relative_cost <= exact + slack + 1e-12
    for p in plans:
        assert p.fork_step + p.branch_steps == p.cumulative_steps
        assert p.fork_step >= p.cumulative_steps - p.delta_steps or not p.fork_clamped


@given(steps=st.lists(st.integers(1, 3000), min_size=1, max_size=8), alpha=st.floats(0.01, 0.99))
@settings(max_examples=100)
def test_uneven_versions_cost_is_the_sum_of_their_steps(steps, alpha):
    plans = plan_versions(steps, alpha, retain_every=None)
    costs = paradigm_costs(plans)
    cumulative = [sum(steps[: i + 1]) for i in range(len(steps))]
    assert [p.cumulative_steps for p in plans] == cumulative
    assert costs["ptfs"].total_steps == sum(cumulative)
    assert costs["cpt"].total_steps == cumulative[-1]
    assert costs["path_switching"].total_steps == cumulative[-1] + sum(p.branch_steps for p in plans)
    for p in plans:
        assert (
            p.fork_step >= p.cumulative_steps - p.delta_steps
        )  # never before S_{i-1}: that main segment is gone


def test_a_store_from_before_retention_windows_clamps_the_fork():
    plans = plan_versions([100] * 8, alpha=0.2, retain_every=None)  # B_6 = 120 > ΔT_6 = 100
    assert [p.fork_clamped for p in plans] == [False] * 5 + [True] * 3
    assert plans[5].fork_step == 500 and plans[5].branch_steps == 100


@given(
    steps=st.lists(st.integers(1, 3000), min_size=1, max_size=8),
    alpha=st.floats(0.01, 0.99),
    every=st.integers(1, 500),
)
@settings(max_examples=200)
def test_every_branch_is_at_least_planned_and_forks_at_a_kept_checkpoint(steps, alpha, every):
    """Unequal versions (a large first one, then small updates) never shorten a branch."""
    try:
        plans = plan_versions(steps, alpha, retain_every=every)
    except PlanError as exc:  # only when no checkpoint can exist where the branch must start
        assert "fork at step 0" in str(exc)
        return
    kept: set[int] = set()
    for p in plans:
        assert not p.fork_clamped
        assert p.branch_steps >= branch_length(alpha, p.cumulative_steps)
        assert p.fork_step + p.branch_steps == p.cumulative_steps
        if p.fork_step < p.previous_cumulative_steps:  # inside earlier data: a checkpoint kept back then
            assert p.fork_step in kept
            assert p.branch_steps < branch_length(alpha, p.cumulative_steps) + every + 1
        kept.update(p.retained_steps)
        assert all(p.previous_cumulative_steps < s <= p.cumulative_steps for s in p.retained_steps)


def test_a_branch_reaching_back_to_step_0_is_refused():
    with pytest.raises(PlanError, match="version 2's branch .* fork at step 0"):
        plan_versions([1, 1], 0.75, retain_every=1)


def test_a_large_first_version_then_small_updates():
    plans = plan_versions([1000, 100, 100, 100], 0.18, retain_every=50)
    assert [(p.fork_step, p.branch_steps) for p in plans] == [(820, 180), (900, 200), (950, 250), (1050, 250)]
    assert plans[0].retained_steps == (820, 850, 900, 950, 1000)
    assert retained_checkpoints(plans) == [820, 900, 950, 1000, 1050, 1100, 1150, 1200, 1250, 1300]


@pytest.mark.parametrize(
    "steps,alpha,warmup,match",
    [
        ([], 0.18, 0, "at least one version"),
        ([10], 1.0, 0, "alpha"),
        ([10], 0.0, 0, "alpha"),
        ([0, 5], 0.2, 0, "version 1 has 0 steps"),
        ([100], 0.5, 60, "warm-up"),
    ],
)
def test_bad_plans_are_refused_with_a_reason(steps, alpha, warmup, match):
    with pytest.raises(PlanError, match=match):
        plan_versions(steps, alpha, warmup, retain_every=10)


@given(
    steps=st.lists(st.integers(30, 400), min_size=1, max_size=5),
    alpha=st.floats(0.05, 0.5),
    shape=st.sampled_from(["cosine", "linear", "1-sqrt", "multi-step"]),
)
@settings(max_examples=25, deadline=None)
def test_costs_equal_the_steps_in_the_lr_csv(tmp_path_factory, steps, alpha, shape):
    report = make_plan(
        PlanRequest(
            delta_steps=steps,
            alpha=alpha,
            warmup_steps=5,
            decay=shape,
            lr_max=3e-3,
            lr_min=3e-4,
            retain_every=20,
            model_preset="tiny",
            vocab_size=512,
        )
    )
    out = tmp_path_factory.mktemp("csv") / "lr.csv"
    report.write_lr_csv(out)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["paradigm"]] = counts.get(row["paradigm"], 0) + 1
    assert counts == {name: cost.total_steps for name, cost in report.paradigms.items()}
    branch_rows = [r for r in rows if r["path"] == "branch"]
    assert {r["paradigm"] for r in branch_rows} == {"path_switching"}
    first, last = report.request.lr_max, report.request.lr_min
    if shape == "multi-step":  # two levels below η_max, floored at η_min
        first, last = max(last, 0.316 * first), max(last, 0.1 * first)
    for v in report.versions:
        mine = [r for r in branch_rows if int(r["version"]) == v.version]
        assert len(mine) == v.branch_steps
        assert int(mine[0]["step"]) == v.fork_step
        assert float(mine[0]["lr"]) == first
        assert float(mine[-1]["lr"]) == last
        anneal = [r for r in rows if r["path"] == "anneal" and int(r["version"]) == v.version]
        assert [r["step"] for r in anneal] == [r["step"] for r in mine]
    main_rows = [r for r in rows if r["path"] == "main" and r["paradigm"] == "path_switching"]
    assert [int(r["step"]) for r in main_rows] == list(range(sum(steps)))


def test_timeline_round_trips_through_json():
    plans = plan_versions([100, 120], 0.2, retain_every=10)
    timeline = Timeline(
        config_hash="abc",
        alpha=0.2,
        decay="cosine",
        versions=[VersionRecord(name=f"v{p.version}", **p.model_dump()) for p in plans],
    )
    again = Timeline.model_validate(json.loads(timeline.model_dump_json()))
    assert again == timeline
    assert again.costs()["path_switching"].total_steps == 220 + 20 + 44
    with pytest.raises(TimelineError, match="version 3 is not in the timeline"):
        again.version(3)


def test_every_paradigm_has_a_cost_and_the_final_tail_is_the_last_main_segment_no_release_uses():
    costs = paradigm_costs(plan_versions([1000] * 4, alpha=0.18, retain_every=50))
    assert list(costs) == list(PARADIGMS)
    assert {n: c.total_steps for n, c in costs.items()} == {
        "ptfs": 10000,
        "cpt": 4000,
        "cpt_replay": 4000,
        "wsd_s": 4000,
        "infinite": 5800,
        "path_switching": 5800,
    }
    # equal versions: the last tail is α·S_V = 720 steps, 51% without it
    for name in ("infinite", "path_switching"):
        assert costs[name].total_steps_without_final_tail == 5080
        assert costs[name].relative_cost_without_final_tail == pytest.approx(0.508)
    assert costs["cpt"].relative_cost_without_final_tail is None
    # a large first version, small updates: v4 forks inside v3's data; only S_3 → S_4 is unused
    plans = plan_versions([1000, 100, 100, 100], alpha=0.18, retain_every=50)
    assert plans[-1].fork_step < plans[-1].previous_cumulative_steps
    assert final_tail_steps(plans) == 100
    assert (
        paradigm_costs(plans)["path_switching"].total_steps_without_final_tail
        == 1300 + sum(p.branch_steps for p in plans) - 100
    )


def test_lr_paths_of_the_related_paradigms_follow_their_definitions():
    plans = plan_versions([100, 50], alpha=0.2, warmup_steps=10, retain_every=5)
    paths = lr_paths(plans, 1.0, 0.1, 10, "linear", plateau_ratio=0.4, cooldown_fraction=0.1)
    assert list(paths) == list(PARADIGMS)

    def lrs(runs, path=None):
        return {(v, s): lr.lr(s) for p, v, lr, a, b in runs if path in (None, p) for s in range(a, b)}

    # WSD-S: one trajectory over 0..S_V, each version decays linearly to η_min at its own end
    wsd = lrs(paths["wsd_s"])
    assert sorted(s for _, s in wsd) == list(range(150))
    assert wsd[(1, 79)] == 1.0 and wsd[(1, 80)] == 1.0 and wsd[(1, 99)] == 0.1  # B_1 = 20 steps
    assert wsd[(2, 100)] == pytest.approx(0.1 + 0.9 / 10)  # re-warm from η_min
    assert wsd[(2, 119)] == 1.0 and wsd[(2, 149)] == 0.1  # B_2 = 30 steps, all in v2's 40 after re-warm
    # infinite: warm-up, a 10-step cosine cool-down to 0.4, then 0.4; anneals from 0.4 to η_min
    main = lrs(paths["infinite"], "main")
    assert main[(1, 10)] == 1.0 and main[(1, 19)] == 0.4 and main[(2, 149)] == 0.4
    anneal = lrs(paths["infinite"], "anneal")
    assert anneal[(1, 80)] == 0.4 and anneal[(1, 99)] == 0.1
    assert anneal[(2, plans[1].fork_step)] == 0.4 and anneal[(2, 149)] == 0.1
    # equal terms: every baseline decays in the given shape
    ptfs = lrs(paths["ptfs"])
    assert ptfs[(1, 55)] == pytest.approx(1.0 - 0.9 * 45 / 89)  # linear over S_1 − W = 90 steps
    assert paths["cpt_replay"] == paths["cpt"]
