import json
import subprocess
import sys

import pytest

from flows.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_plan_json_headline(capsys):
    assert main(["plan", "--versions", "4", "--steps-per-version", "1000", "--alpha", "0.18", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paradigms"]["path_switching"]["relative_cost"] == pytest.approx(0.58)
    assert out["paradigms"]["ptfs"]["relative_cost"] == 1.0
    assert [v["fork_step"] for v in out["versions"]] == [820, 1640, 2460, 3280]
    assert set(out["versions"][0]) >= {
        "version",
        "delta_steps",
        "cumulative_steps",
        "branch_steps",
        "fork_step",
    }


def test_plan_uneven_table_csv_and_plot(tmp_path, capsys):
    csv_path, png = tmp_path / "lr.csv", tmp_path / "lr.png"
    assert main(["plan", "--steps", "800,1200,1000", "--lr-csv", str(csv_path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "path_switching" in out and "1640" in out
    assert csv_path.read_text().splitlines()[0] == "paradigm,path,version,step,lr"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--alpha", "0"], "--alpha"),
        (["--alpha", "1"], "--alpha"),
        (["--alpha", "-0.3"], "--alpha"),
        (["--versions", "0"], "--versions"),
        (["--lr-min", "0.1", "--lr-max", "0.01"], "--lr-min"),
        (["--decay", "exponential"], "--decay"),
        (["--steps", "10,x"], "--steps"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_clear_line(args, needle):
    base = ["plan", "--versions", "4", "--steps-per-version", "100"]
    if args[0] == "--versions":
        base = ["plan", "--steps-per-version", "100"]
    elif args[0] == "--steps":
        base = ["plan"]
    proc = run_cli(*base, *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lrpath: error:") and needle in lines[0]
    assert "Traceback" not in proc.stderr
