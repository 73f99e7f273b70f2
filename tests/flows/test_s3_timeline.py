"""The whole timeline through the flows with the store on s3:// (moto's real S3 server on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers  # noqa: E402

from flows.version_update import version_update  # noqa: E402
from lrpath_core.incoming import stage_incoming  # noqa: E402
from lrpath_core.model_index import read_index  # noqa: E402
from lrpath_core.published import download_published  # noqa: E402
from lrpath_core.storage import Store  # noqa: E402
from lrpath_core.timeline_store import require_timeline, save_config  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]
LRPATH = str(Path(sys.executable).with_name("lrpath"))
SLOW_PUBLISH = """
import sys, time
import lrpath_core.publish as publish
claim = publish.claim_revision
def slow_claim(*args, **kwargs):  # widen the window between choosing a revision and registering it
    revision = claim(*args, **kwargs)
    time.sleep(6)
    return revision
publish.claim_revision = slow_claim
from flows.cli import main
sys.exit(main(sys.argv[1:]))
"""


def prefect_files() -> list[Path]:
    """Prefect's database and any other file of its home (artifacts and logs live in the database)."""
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    files = [f for f in home.rglob("*") if f.is_file()]
    assert any(f.suffix == ".db" for f in files), f"no Prefect database under {home}"
    return files


def test_whole_timeline_on_s3_then_from_pretrained(
    tmp_path, monkeypatch, capfd, synthetic_sources, make_config
):
    secret = f"lrpath-secret-{uuid.uuid4().hex}"
    with servers.moto_s3_server() as endpoint:
        for key, value in servers.s3_env(endpoint).items():
            monkeypatch.setenv(key, value)
        servers.create_bucket(endpoint, "lrpath-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto accepts any key: this one must never leak
        store = Store("s3://lrpath-test/timelines/demo")
        save_config(store, make_config(store.url))
        for source in synthetic_sources:
            stage_incoming(store, source)
        result = version_update(store=store.url)
        assert result["released"] == [1, 2]

        timeline = require_timeline(store)
        assert [v.status for v in timeline.versions] == ["released", "released"]
        assert (
            timeline.steps_run.main + timeline.steps_run.branch
            == timeline.costs()["path_switching"].total_steps
        )
        assert all(
            r.url.startswith("s3://lrpath-test/timelines/demo/models/")
            for v in timeline.versions
            for r in v.releases
        )
        assert sorted(read_index(store).versions) in (["1", "2"], [1, 2])

        local = download_published(store, 2, 1, tmp_path / "v2")
        model = AutoModelForCausalLM.from_pretrained(local)
        tokenizer = AutoTokenizer.from_pretrained(local)
        ids = tokenizer("a sentence to score", return_tensors="pt").input_ids
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        assert torch.isfinite(loss)
        assert store.exists(f"checkpoints/main/step-{timeline.version(2).cumulative_steps:08d}/manifest.json")

        # two re-runs of one version's branch at once, in two processes: both publish, one after the
        # other (the version's publish lease), each under its own revision; every revision verifies
        env = {**os.environ, **servers.s3_env(endpoint), "AWS_SECRET_ACCESS_KEY": secret}
        reruns = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SLOW_PUBLISH,
                    "rerun-branch",
                    "1",
                    "--decay",
                    decay,
                    "--store",
                    store.url,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for decay in ("linear", "1-sqrt")
        ]
        outputs = [proc.communicate(timeout=600) for proc in reruns]
        assert [proc.returncode for proc in reruns] == [0, 0], [err[-3000:] for _, err in outputs]
        revisions = read_index(store).revisions(1)
        assert sorted((r.revision, r.decay) for r in revisions)[0] == (1, "cosine")
        assert {r.decay for r in revisions[1:]} == {"linear", "1-sqrt"} and len(revisions) == 3
        verify = subprocess.run(
            [LRPATH, "verify", "--store", store.url], env=env, capture_output=True, text=True, timeout=300
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "4 of 4 published revision(s) verified" in verify.stdout

        # the credential appears in no stored object, log line, Prefect database or artifact
        leaks = [rel for rel in store.walk_files("") if secret.encode() in store.read_bytes(rel)]
        assert leaks == []
        captured = capfd.readouterr()
        assert secret not in captured.out and secret not in captured.err
        assert all(secret not in out + err for out, err in outputs)
        assert not any(secret.encode() in f.read_bytes() for f in prefect_files())
