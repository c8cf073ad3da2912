"""The pool's workers share one stdout: each closing line must reach it in one write."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dashboard.feed.pool import report_line

ROOT = Path(__file__).resolve().parents[2]
LINES = 5000


class _Writes:
    def __init__(self):
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_feed005_report_line_is_one_write_with_its_newline():
    out = _Writes()
    report_line("p-2", {"applied": 1500, "duplicates": 3}, out)
    assert out.writes == ["p-2: applied=1500 duplicates=3\n"]


def test_feed005_two_unbuffered_workers_never_interleave_their_lines():
    # the CI condition: PYTHONUNBUFFERED, two processes writing to one pipe at once
    # both spin to a common start so their writes overlap (print's two writes interleave thousands
    # of times in 2 x 5,000 lines this way)
    code = ("import sys, time\nfrom dashboard.feed.pool import report_line\n"
            "start = float(sys.argv[2])\nwhile time.time() < start: pass\n"
            f"for i in range({LINES}):\n    report_line(sys.argv[1], {{'applied': i, 'skipped': 0}})\n")
    start = str(time.time() + 1.0)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    read, write = os.pipe()
    procs = [subprocess.Popen([sys.executable, "-c", code, name, start], stdout=write, env=env, cwd=ROOT)
             for name in ("p-1", "p-2")]
    os.close(write)
    with os.fdopen(read) as pipe:
        lines = pipe.read().splitlines()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert len(lines) == 2 * LINES
    for name in ("p-1", "p-2"):
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert mine == [f"{name}: applied={i} skipped=0" for i in range(LINES)]
