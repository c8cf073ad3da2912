"""The embedded redis-server outlives a terminal's signals to our process group, and not our process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.unit.feed_support import alive

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys, time
from dashboard.redis_server import EmbeddedRedis
srv = EmbeddedRedis(sys.argv[1], appendonly=False).start()
try:  # the pid is printed inside: a Ctrl-C right after it still lands in the handler
    print(srv.proc.pid, flush=True)
    time.sleep(120)
except KeyboardInterrupt:
    time.sleep(0.5)  # the consumer finishing its batch would still reach Redis here
    import redis
    print("ping-after-ctrl-c", redis.Redis(unix_socket_path=srv.socket).ping(), flush=True)
"""


def _start(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "r")], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    return proc, int(proc.stdout.readline())


def test_redis001_ctrl_c_reaches_us_not_the_embedded_server(tmp_path):
    proc, server = _start(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, _ = proc.communicate(timeout=30)
    assert b"ping-after-ctrl-c True" in out
    deadline = time.monotonic() + 15
    while alive(server) and time.monotonic() < deadline:  # stopped by us at exit (atexit), saved
        time.sleep(0.05)
    assert not alive(server)


def test_redis002_the_server_stops_when_our_process_is_killed(tmp_path):
    proc, server = _start(tmp_path)
    assert alive(server)
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 15
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(server)
