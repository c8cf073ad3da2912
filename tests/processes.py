"""Ending a child process a test started: SIGTERM (its graceful stop is part of what is tested
elsewhere), then SIGKILL if it outlives the grace, so no test leaves a server behind."""
from __future__ import annotations

import subprocess


def end_process(proc: subprocess.Popen, grace: float = 30) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode
