"""``python -m dashboard briefing`` as a scheduled job runs it: real subprocesses on a seeded store."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.store.engine import make_engine, migrate
from tests.unit.kpi_fixtures import seeded

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    eng = make_engine(url)
    migrate(eng)
    seeded(eng)
    eng.dispose()
    out = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out.update(DATABASE_URL=url, VAR_DIR=str(tmp_path / "var"), TIMEZONE="Asia/Shanghai", PYTHONPATH=str(ROOT))
    return out


def run(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dashboard", "briefing", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_brief020_unknown_scope_and_future_week_exit_2_with_one_clear_line(env, tmp_path):
    r = run(env, "--scope", "999999", "--week", "2026-W46", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == \
        "error: unknown scope 999999: no region with that code in the store"
    r = run(env, "--scope", "370202", "--week", "2099-W01", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "error: week 2099-W01 is in the future" in r.stderr
    r = run(env, "--scope", "370202", "--week", "2026-W60", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "has no ISO week 60" in r.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.pdf"))


def test_brief021_every_street_in_one_run_with_log_lines_off_a_terminal(env, tmp_path):
    out = tmp_path / "o"
    r = run(env, "--scope", "370202", "--streets", "--week", "2026-W46", "--out", str(out), "--lang", "en")
    assert r.returncode == 0, r.stderr
    for street in ("370202001", "370202002"):
        folder = out / f"briefing-{street}-2026-W46-en"
        assert (folder / f"briefing-{street}-2026-W46-en.pdf").stat().st_size > 10_000
        assert (folder / f"briefing-{street}-2026-W46-en.xlsx").exists()
        assert f"{street} 2026-W46: {folder / f'briefing-{street}-2026-W46-en.pdf'}" in r.stdout
        assert f"briefing {street}: pdf" in r.stderr  # a plain log line per step
    assert "\r" not in r.stderr and "it/s" not in r.stderr and "step/s" not in r.stderr


def test_brief022_a_progress_bar_on_a_terminal(env, tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "briefing", "--scope", "370202001", "--week",
                             "2026-W46", "--out", str(tmp_path / "o")], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0, seen[-2000:]
    os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "100%" in text and "13/13" in text and "\r" in text  # tqdm redraws one line
    assert "briefing 370202001: pdf" not in text  # no log line per step on a terminal
