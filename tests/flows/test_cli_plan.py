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


def test_plan_states_path_switchings_cost_with_and_without_the_final_tail(capsys):
    args = ["plan", "--steps", "100,100,100,100", "--alpha", "0.18", "--warmup", "5"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ps = out["paradigms"]["path_switching"]
    assert (out["relative_cost"], out["relative_cost_without_final_tail"]) == (0.58, 0.508)
    assert (ps["relative_cost"], ps["relative_cost_without_final_tail"]) == (0.58, 0.508)
    assert (ps["total_steps"], ps["total_steps_without_final_tail"]) == (580, 508)
    assert main(args) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("path_switching")]
    assert row.split()[1:] == ["580", "0.5800", "0.5080", "(508", "steps)"]
