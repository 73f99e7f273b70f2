import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrpath_core.corpus import GCIDE_PATH

pytestmark = pytest.mark.slow
LRPATH = str(Path(sys.executable).with_name("lrpath"))
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "demo_quick_models.json"


@pytest.mark.skipif(
    not os.path.exists(GCIDE_PATH), reason="dict-gcide is not installed (scripts/system-deps.sh)"
)
def test_demo_quick_then_status_json(tmp_path):
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "LRPATH_STORE": str(tmp_path / "store")}
    demo = subprocess.run(
        [LRPATH, "demo", "--quick", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stderr[-4000:]
    status = subprocess.run(
        [LRPATH, "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    out = json.loads(status.stdout)
    assert [v["version"] for v in out["versions"]] == [1, 2, 3, 4]
    for row in out["versions"]:
        assert row["ppl"] is not None and row["ppl"] < 4096
        assert row["published_url"] and Path(row["published_url"], "model.safetensors").exists()
        assert row["relative_cost"] <= 0.6
    assert out["relative_cost"] <= 0.6
    assert (
        out["steps_run"]["main"] + out["steps_run"]["branch"]
        == out["paradigms"]["path_switching"]["total_steps"]
    )
    # the refactors keep the numbers: the same published bytes as the golden list
    models = tmp_path / "store" / "models"
    published = {
        path.parent.relative_to(models).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(models.glob("v*/r*/model.safetensors"))
    }
    assert published == json.loads(GOLDEN.read_text())["model_safetensors_sha256"]


def test_user_errors_are_one_line(tmp_path):
    env = {**os.environ, "LRPATH_STORE": str(tmp_path / "empty")}
    for args, needle in (
        (["status"], "no timeline"),
        (["ingest", str(tmp_path / "missing")], "is not a folder"),
        (["rerun-branch", "1"], "no timeline"),
        (["data", "gcide", "--out", str(tmp_path / "d"), "--versions", "4"], None),
    ):
        proc = subprocess.run(
            [LRPATH, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        if needle is None:
            continue
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("lrpath: error:") and needle in proc.stderr, (
            proc.stderr
        )


def test_unreachable_store_and_unknown_preset_are_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "LRPATH_S3_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    proc = subprocess.run(
        [LRPATH, "update", "--store", "s3://nowhere/x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unreachable" in proc.stderr.strip().splitlines()[-1]

    (tmp_path / "lrpath.yaml").write_text("model:\n  preset: gigantic\n")
    proc = subprocess.run(
        [LRPATH, "update", "--store", str(tmp_path / "s"), "--config", "lrpath.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown model preset 'gigantic'" in proc.stderr
