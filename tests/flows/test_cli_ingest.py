"""``lrpath ingest`` as a user runs it: bad names, changed content, refused first drops, held drops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrpath_core import layout
from lrpath_core.synthetic import write_synthetic_versions

LRPATH = str(Path(sys.executable).with_name("lrpath"))


def lrpath(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return subprocess.run([LRPATH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrpath: error:"), proc.stderr
    return lines[0]


@pytest.fixture
def drop(tmp_path) -> Path:
    folder = tmp_path / "data" / "v1"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a few words for a small drop\n\nand a second paragraph\n")
    return folder


@pytest.mark.parametrize("name", ["../x", "a/b", "../models/v1/r1"])
def test_a_bad_drop_name_is_one_line_and_writes_nothing(tmp_path, drop, name):
    store = tmp_path / "store"
    error = one_line_error(lrpath("ingest", str(drop), "--name", name, "--store", str(store), cwd=tmp_path))
    assert f"drop name {name!r} is not allowed" in error
    assert not any(p.is_file() for p in store.rglob("*")) if store.exists() else True
    assert not (tmp_path / "x").exists() and not (tmp_path / "models").exists()


def test_other_content_under_a_used_name_names_both_checksums(tmp_path, drop):
    store = tmp_path / "store"
    first = lrpath("ingest", str(drop), "--store", str(store), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    staged = first.stdout.split("data sha256 ")[1][:16]
    (drop / "a.txt").write_text("entirely other words\n")
    error = one_line_error(lrpath("ingest", str(drop), "--store", str(store), cwd=tmp_path))
    assert "already holds other content under the name 'v1'" in error and staged in error
    assert (store / "incoming" / "v1" / "a.txt").read_text().startswith("a few words")


def test_a_refused_first_drop_leaves_no_tokenizer(tmp_path, drop):
    """Too little text for one batch: the first version is refused, and nothing of it stays."""
    store = tmp_path / "store"
    proc = lrpath("ingest", str(drop), "--now", "--store", str(store), cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "version 1 has" in proc.stderr and "lrpath: error:" in proc.stderr
    assert not (store / layout.TOKENIZER).exists()
    assert not (store / layout.TIMELINE).exists() and not (store / layout.data_dir(1)).exists()


@pytest.mark.slow
def test_a_drop_with_an_invalid_utf8_shard_is_held_without_a_traceback(tmp_path):
    (source,) = write_synthetic_versions(str(tmp_path / "data"), versions=1, docs_per_version=200, seed=0)
    (Path(source) / "bad.txt").write_bytes(b"caf\xe9 au lait\n")  # Latin-1, not UTF-8
    store = tmp_path / "store"
    proc = lrpath("ingest", source, "--now", "--store", str(store), cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in output, output[-4000:]
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("lrpath: error:")]
    assert "bad.txt" in error and "not valid UTF-8" in error and "lrpath release v1" in error
    assert (store / "quarantine" / "v1" / "bad.txt").exists()
    assert (store / "quarantine" / "v1" / "bad.txt.reason.txt").exists()
    assert not (store / layout.TOKENIZER).exists()


def test_a_different_config_on_an_existing_store_names_the_fields(tmp_path, drop):
    store = tmp_path / "store"
    assert lrpath("ingest", str(drop), "--store", str(store), cwd=tmp_path).returncode == 0
    config = tmp_path / "lrpath.yaml"
    config.write_text("optimizer:\n  lr_max: 0.01\nparadigm:\n  alpha: 0.25\n")
    error = one_line_error(lrpath("update", "--store", str(store), "--config", str(config), cwd=tmp_path))
    assert "optimizer.lr_max: 0.003 -> 0.01" in error and "paradigm.alpha: 0.18 -> 0.25" in error
