"""``lrpath status`` after a re-run branch: the row and APPL are the current revision's, and the
re-run's steps are counted apart from the plan's."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from lrpath_core.model_index import read_index
from lrpath_core.pipeline import update_version
from lrpath_core.timeline_store import require_timeline


def test_status_shows_the_current_revision_and_counts_reruns_apart(ingested_store, one_torch_thread, capsys):
    store, cfg = ingested_store
    update_version(store, cfg, 1)
    assert main(["rerun-branch", "1", "--decay", "1-sqrt", "--local", "--store", store.url]) == 0
    r1, r2 = read_index(store).revisions(1)
    assert (r2.revision, r2.decay) == (2, "1-sqrt")
    assert r2.metrics["ppl"] != pytest.approx(r1.metrics["ppl"], abs=1e-3), (
        "the test needs two different PPLs"
    )
    capsys.readouterr()

    assert main(["status", "--json", "--store", store.url]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["versions"][0]
    assert (row["revision"], row["revision_decay"], row["published_url"]) == (2, "1-sqrt", r2.url)
    assert row["ppl"] == round(r2.metrics["ppl"], 4)
    assert row["ppl_per_version"] == {"ppl_v1": round(r2.metrics["ppl_v1"], 4)}
    assert out["appl"] == pytest.approx(r2.metrics["ppl"]), "v2 is not trained: APPL is v1's current PPL"

    v1 = require_timeline(store).version(1)
    assert out["steps_run"] == {
        "main": v1.cumulative_steps,
        "branch": v1.branch_steps,
        "rerun": v1.branch_steps,
        "total": v1.cumulative_steps + 2 * v1.branch_steps,
    }
    ps = out["paradigms"]["path_switching"]
    assert out["relative_cost"] == ps["relative_cost"] > out["relative_cost_without_final_tail"]
    assert out["relative_cost_without_final_tail"] == ps["relative_cost_without_final_tail"]

    assert main(["status", "--store", store.url]) == 0
    text = capsys.readouterr().out
    [line] = [x for x in text.splitlines() if x.lstrip().startswith("1 ")]
    assert f"{r2.metrics['ppl']:.3f}" in line and r2.url in line and "1-sqrt" in line
    assert f"APPL {r2.metrics['ppl']:.3f}" in text
    assert f"+ {v1.branch_steps} in re-run branches" in text
    assert "without the last version's main tail" in text
