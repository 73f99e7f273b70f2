import math

import pytest

from lrpath_core.evaluate import evaluate_checkpoint
from lrpath_core.ingest import add_version
from lrpath_core.layout import main_checkpoint
from lrpath_core.pipeline import branch, run_timeline, update_version
from lrpath_core.report import timeline_appl
from lrpath_core.storage import Store
from lrpath_core.timeline import TimelineError, paradigm_steps
from lrpath_core.timeline_store import require_timeline


def test_two_version_timeline_trains_evaluates_and_costs_what_it_planned(
    tmp_path, synthetic_sources, make_config
):
    cfg = make_config(str(tmp_path / "store"))
    store = Store(cfg.store)
    timeline = run_timeline(store, cfg, synthetic_sources)
    v1, v2 = timeline.versions
    assert v1.fork_step == v1.cumulative_steps - v1.branch_steps
    assert v1.fork_checkpoint.step == v1.fork_step and v1.version_end_checkpoint.step == v1.cumulative_steps
    assert v2.fork_checkpoint.step == v2.fork_step and v2.branch_checkpoint.step == v2.cumulative_steps

    # PPL falls with training: random init ≈ vocab size, release 1 far below, release 2 lower still on v1 data
    vocab = cfg.data.vocab_size
    init = evaluate_checkpoint(store, main_checkpoint(v1.fork_step), [1])
    assert v1.metrics["ppl_v1"] < init.per_version[1] < vocab * 2
    assert v2.metrics["ppl_v1"] < v1.metrics["ppl_v1"]
    assert v2.metrics["ppl_v2"] < vocab / 4
    overall = (v2.metrics["ppl_v1"], v2.metrics["ppl_v2"], v2.metrics["ppl"])
    assert min(overall[:2]) <= overall[2] <= max(overall[:2])
    assert timeline_appl(timeline) == pytest.approx((v1.metrics["ppl"] + v2.metrics["ppl"]) / 2)

    # steps actually run equal the plan: S_V on the main path + Σ B_i on branches
    planned = paradigm_steps(timeline.plans())["path_switching"]
    assert timeline.steps_run.main == v2.cumulative_steps
    assert timeline.steps_run.branch == v1.branch_steps + v2.branch_steps
    assert timeline.steps_run.main + timeline.steps_run.branch == planned

    # running it again does nothing: every step is already recorded
    again = run_timeline(store, cfg, synthetic_sources)
    assert again.steps_run == timeline.steps_run and len(again.versions) == 2


def test_same_data_twice_is_one_version_and_renamed_content_is_refused(
    ingested_store, tmp_path, synthetic_sources
):
    store, cfg = ingested_store
    assert add_version(store, cfg, synthetic_sources[0]).version == 1
    assert len(require_timeline(store).versions) == 2
    other = tmp_path / "v1"
    other.mkdir()
    (other / "shard-00000.txt").write_text("entirely different text for the same name.\n\n" * 200)
    with pytest.raises(TimelineError, match="already named 'v1' with other content"):
        add_version(store, cfg, str(other))


def test_branch_with_another_alpha_needs_a_stored_fork(ingested_store):
    store, cfg = ingested_store
    update_version(store, cfg, 1)
    with pytest.raises(TimelineError, match="no main-path checkpoint at or before step"):
        branch(store, cfg, 1, alpha=0.5)
    record = require_timeline(store).version(1)
    short = branch(store, cfg, 1, alpha=0.1)  # its fork lies after the kept one: it starts there, longer
    assert short.fork_step == record.fork_step and short.branch_steps == record.branch_steps
    linear = branch(store, cfg, 1, decay="linear")
    assert linear.fork_step == require_timeline(store).version(1).fork_step
    assert linear.checkpoint.step == linear.fork_step + linear.branch_steps
    assert math.isfinite(evaluate_checkpoint(store, store.relative(linear.checkpoint.url), [1]).overall)


def test_changed_config_is_refused_for_an_existing_timeline(ingested_store, tmp_path, make_config):
    store, _ = ingested_store
    changed = make_config(store.url, **{"optimizer.lr_max": 1e-2})
    new = tmp_path / "v3"
    new.mkdir()
    (new / "shard-00000.txt").write_text("new words for a third version.\n\n" * 300)
    with pytest.raises(TimelineError, match="configuration changed"):
        add_version(store, changed, str(new))


def test_small_updates_after_a_large_version_fork_inside_earlier_data_at_full_length(tmp_path, make_config):
    """ΔT = large, small, small: each later fork lies inside earlier data, at a retained checkpoint."""
    from lrpath_core.model_index import read_index
    from lrpath_core.synthetic import write_synthetic_versions
    from lrpath_core.timeline import branch_length

    big = write_synthetic_versions(str(tmp_path / "big"), versions=1, docs_per_version=600, seed=1)
    small = write_synthetic_versions(str(tmp_path / "small"), versions=3, docs_per_version=40, seed=2)[1:]
    cfg = make_config(str(tmp_path / "store"), **{"paradigm.alpha": 0.3, "paradigm.retain_every": 4})
    store = Store(cfg.store)
    timeline = run_timeline(store, cfg, [*big, *small])
    later = timeline.versions[1:]
    assert all(v.fork_step < v.previous_cumulative_steps for v in later), [v.fork_step for v in later]
    for v in timeline.versions:
        assert not v.fork_clamped
        assert v.branch_steps >= branch_length(0.3, v.cumulative_steps)
        assert v.branch_checkpoint.step == v.cumulative_steps
        published = read_index(store).latest(v.version)
        assert (published.fork_step, published.branch_steps) == (v.fork_step, v.branch_steps)
    assert timeline.steps_run.branch == sum(v.branch_steps for v in timeline.versions)
    assert timeline.steps_run.main == timeline.versions[-1].cumulative_steps
