import math

import pytest

from lrpath_core.evaluate import evaluate_checkpoint
from lrpath_core.ingest import add_version
from lrpath_core.layout import main_checkpoint
from lrpath_core.pipeline import branch, run_timeline, timeline_appl, update_version
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
    with pytest.raises(TimelineError, match="no main-path checkpoint at step"):
        branch(store, cfg, 1, alpha=0.5)
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
