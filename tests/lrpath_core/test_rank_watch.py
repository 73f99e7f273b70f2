"""A training process's watchdog and progress lines (``lrpath_core.rank_watch``)."""

from __future__ import annotations

import subprocess
import sys
import time

from lrpath_core.rank_watch import parse_progress, print_progress

WATCHER = "import sys, time\nfrom lrpath_core.rank_watch import exit_when_gone\nexit_when_gone(int(sys.argv[1]))\ntime.sleep(60)\n"


def test_a_rank_exits_by_itself_once_its_launcher_is_gone():
    launcher = subprocess.Popen(["sleep", "60"])
    rank = subprocess.Popen([sys.executable, "-c", WATCHER, str(launcher.pid)])
    try:
        time.sleep(1.5)
        assert rank.poll() is None, "the rank must keep running while its launcher lives"
        launcher.kill()
        launcher.wait()
        assert rank.wait(timeout=10) == 143
    finally:
        for proc in (launcher, rank):
            if proc.poll() is None:
                proc.kill()


def test_progress_lines_round_trip(capsys):
    print_progress(3, 10, 4.25, 1e-3)
    line = capsys.readouterr().out.strip()
    assert parse_progress(line) == (3, 10, 4.25, 1e-3)
    assert parse_progress("W1125 torch.distributed warning") is None
    assert parse_progress("LRPATH_PROGRESS {broken") is None
