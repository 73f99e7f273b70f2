from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrpath_core.compare_setup import CompareError, compare_settings
from lrpath_core.compare_study import resplit, run_study
from lrpath_core.synthetic import write_synthetic_versions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("study-data")
    write_synthetic_versions(str(root), versions=2, docs_per_version=40, seed=0)
    return str(root)


def documents(folder: Path) -> list[str]:
    return [
        d.strip()
        for f in sorted(folder.glob("shard-*.txt"))
        for d in f.read_text().split("\n\n")
        if d.strip()
    ]


def test_each_study_runs_its_settings_and_writes_its_plot(tmp_path, two_versions, make_config):
    out = tmp_path / "out"
    cfg = make_config(str(out), **{"optimizer.warmup_steps": 2})
    settings = compare_settings().model_copy(
        update={
            "study_lr_factors": [1.0, 2.0],
            "study_alphas": [0.18, 0.3],
            "study_shapes": ["linear"],
            "study_versions": [3],
            "paradigms": ["ptfs", "path_switching"],
        }
    )
    first = run_study("first-stage", two_versions, str(out), cfg, settings)
    assert [(p.label, p.paradigm) for p in first.points] == [
        ("main LR ×1", "path_switching"),
        ("PTFS", "ptfs"),
        ("main LR ×2", "path_switching"),
    ]
    doubled = json.loads((out / "studies/first-stage/lr-x2/results.json").read_text())
    assert doubled["config"]["optimizer"]["lr_max"] == 2 * cfg.optimizer.lr_max
    assert first.points[0].appl != first.points[2].appl

    second = run_study("second-stage", two_versions, str(out), cfg, settings)
    labels = [p.label for p in second.points]
    assert labels == ["α=0.18 linear", "PTFS linear", "α=0.3 linear"]
    costs = {p.label: p.relative_cost for p in second.points}
    assert costs["α=0.3 linear"] > costs["α=0.18 linear"] and costs["PTFS linear"] == 1.0
    assert [(p.alpha, p.decay) for p in second.points] == [
        (0.18, "linear"),
        (None, "linear"),
        (0.3, "linear"),
    ]
    seed = out / "studies/second-stage/seed-1234"
    assert (seed / "ptfs/linear").is_dir() and not (seed / "ptfs/cosine").exists()
    assert (seed / "path_switching/alpha-0.3/checkpoints/branches/v2-linear-a0.3").is_dir()

    versions = run_study("versions", two_versions, str(out), cfg, settings)
    assert [(p.versions, p.paradigm) for p in versions.points] == [(3, "ptfs"), (3, "path_switching")]
    # one corpus, re-split in order: the same documents, V contiguous parts
    original = documents(Path(two_versions) / "v1") + documents(Path(two_versions) / "v2")
    split = out / "studies/versions/data-V3"
    parts = [documents(split / f"v{i}") for i in (1, 2, 3)]
    assert [d for part in parts for d in part] == original and all(parts)

    for study in ("first-stage", "second-stage", "versions"):
        assert (out / f"studies/{study}.png").read_bytes()[:8] == PNG
        saved = json.loads((out / f"studies/{study}.json").read_text())
        assert (
            saved["study"] == study
            and len(saved["points"]) == {"first-stage": 3, "second-stage": 3, "versions": 2}[study]
        )


def test_an_unknown_study_or_a_corpus_too_small_to_split_is_refused(tmp_path, two_versions, make_config):
    cfg = make_config(str(tmp_path / "out"))
    with pytest.raises(
        CompareError, match="unknown study 'third-stage': choose from first-stage, second-stage, versions"
    ):
        run_study("third-stage", two_versions, str(tmp_path / "out"), cfg, compare_settings())
    with pytest.raises(CompareError, match="too few for 500 versions"):
        resplit(two_versions, None, str(tmp_path / "split"), 500)
