from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os

import pytest
import yaml

from flows.cli import main as cli_main
from lrpath_core.synthetic import write_synthetic_versions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_setup(tmp_path, make_config):
    data = tmp_path / "data"
    write_synthetic_versions(str(data), versions=2, docs_per_version=30, seed=0)
    cfg = make_config(str(tmp_path / "unused"), **{"optimizer.warmup_steps": 2})
    config_path = tmp_path / "lrpath.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"store"})))
    return str(data), str(tmp_path / "out"), str(config_path)


def test_flow_runs_each_paradigm_and_seed_as_a_task_and_the_cli_reads_the_same_results(
    tiny_setup, monkeypatch
):
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client

    from flows.compare import compare_paradigms

    data, out, config_path = tiny_setup
    returned = compare_paradigms(
        data=data,
        out=out,
        model="tiny",
        quick=False,
        versions=2,
        config_path=config_path,
        paradigms="ptfs,wsd-s,path_switching",
        seeds="0,1",
    )
    saved = json.loads(open(os.path.join(out, "results.json")).read())
    assert returned == saved
    assert list(saved["paradigms"]) == ["ptfs", "wsd_s", "path_switching"]
    assert saved["seeds"] == [0, 1]
    planned = saved["plan"]["paradigms"]
    for name, r in saved["paradigms"].items():
        assert [s["steps_run"] for s in r["seeds"]] == [planned[name]["total_steps"]] * 2
        assert r["relative_cost"] == pytest.approx(planned[name]["relative_cost"])
        assert len(r["ppl"]) == 2 and r["appl_std"] > 0
    table = Artifact.get("compare-paradigms")
    assert table is not None and table.type == "table"
    assert Artifact.get("compare-paradigms-report") is not None

    async def task_names() -> set[str]:
        async with get_client() as client:
            return {t.name for t in await client.read_task_runs()}

    names = asyncio.run(task_names())
    for seed in (0, 1):
        assert f"prepare-seed-{seed}" in names
        assert {f"train-{p}-seed-{seed}" for p in ("ptfs", "wsd_s", "path_switching")} <= names

    # the CLI on the same folder: everything is done already, so it only reads and reports
    argv = [
        "compare", "--data", data, "--out", out, "--versions", "2", "--config", config_path,
        "--paradigms", "ptfs,wsd_s,path-switching", "--seeds", "0,1", "--json",
    ]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli_main(argv) == 0
    assert json.loads(printed.getvalue()) == saved and printed.getvalue().count("\n") == 1
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        assert cli_main(argv[:-1]) == 0
    assert "path_switching" in table.getvalue() and " ± " in table.getvalue()


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "out")
    assert cli_main(["compare", "--data", str(empty), "--out", out, "--alpha", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lrpath: error: Invalid value for '--alpha': Input should be less than 1"
    )
    assert cli_main(["compare", "--data", str(empty), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no version folders" in err[0]
    assert cli_main(["compare", "--out", out]) == 2
    assert capsys.readouterr().err.strip() == "lrpath: error: Missing option '--data'."
    assert cli_main(["compare", "--data", str(empty), "--out", out, "--paradigms", "ptfs,sgd"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lrpath: error: unknown paradigm 'sgd': choose from ptfs, cpt, cpt-replay, wsd-s, infinite, "
        "path-switching (hyphens or underscores)"
    )
    assert cli_main(["compare", "--data", str(empty), "--out", out, "--cpt-optimizer", "forget"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cpt-optimizer" in err[0] and "'keep' or 'reset'" in err[0]
