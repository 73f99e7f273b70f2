"""The ``lrpath`` command itself: help built from the config, one-line user errors, tracebacks for bugs."""

import subprocess
import sys

import pytest

from flows.cli import main
from lrpath_core.config import DemoSettings, ProjectConfig

COMMANDS = ["plan", "ingest", "update", "status", "release", "rerun-branch", "demo", "compare", "data"]


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "flows.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command} " in out, command


@pytest.mark.parametrize(
    "command,option,default",
    [
        (["plan"], "--alpha", ProjectConfig().paradigm.alpha),
        (["plan"], "--warmup", ProjectConfig().optimizer.warmup_steps),
        (["plan"], "--decay", ProjectConfig().paradigm.decay),
        (["plan"], "--lr-max", ProjectConfig().optimizer.lr_max),
        (["plan"], "--lr-min", ProjectConfig().optimizer.lr_min),
        (["demo"], "--versions", DemoSettings().versions),
        (["demo"], "--data-dir", DemoSettings().data_dir),
        (["compare"], "--model", ProjectConfig().model.preset),
        (["compare"], "--alpha", ProjectConfig().paradigm.alpha),
        (["compare"], "--seed", ProjectConfig().optimizer.seed),
        (["data", "gcide"], "--versions", DemoSettings().versions),
        (["status"], "--store", ProjectConfig().store),
    ],
)
def test_command_help_shows_each_default_from_the_config(capsys, command, option, default):
    assert main([*command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    start = out.index(f"{option} ")
    following = out[start : start + 400]
    assert f"default: {default}" in following, following


def test_help_of_every_command_names_the_config_field(capsys):
    assert main(["plan", "--help"]) == 0
    assert "config: paradigm.alpha" in " ".join(capsys.readouterr().out.split())
    assert main(["compare", "--help"]) == 0
    assert "CompareSettings.quick" in " ".join(capsys.readouterr().out.split())


def test_out_of_range_value_is_one_line_and_exit_2():
    proc = run("plan", "--versions", "4", "--steps-per-version", "100", "--alpha", "1.5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lrpath: error: Invalid value for '--alpha': Input should be less than 1"
    ]


def test_a_bug_keeps_its_traceback():
    """Only LrpathError subclasses are user errors; a ValueError from a bug is not hidden as one."""
    code = (
        "import sys, lrpath_core.planner as planner\n"
        "def broken(request): raise ValueError('injected bug')\n"
        "planner.make_plan = broken\n"
        "from flows.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = run("plan", "--versions", "2", "--steps-per-version", "100", code=code)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: injected bug" in proc.stderr
    assert "lrpath: error" not in proc.stderr
