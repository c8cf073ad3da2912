"""Process-level: ``python -m dashboard consume`` killed with SIGKILL mid-batch, stopped with SIGTERM,
and run as a pool of worker processes (``--workers``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dashboard.feed.contract import DEAD_LETTER, GROUP, STREAM
from dashboard.redis_server import connect
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, feed_pending, patrol, position
from tests.unit import feed_support as F

ROOT = Path(__file__).resolve().parents[2]


def _env(db_url: str, redis_url: str, tmp_path: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "VAR_DIR": str(tmp_path / "var"),
                "DEMO": "0", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _start(env: dict, name: str, *args: str, workers: int = 1) -> subprocess.Popen:
    """One consumer process unless asked (``consume`` defaults to one worker per core)."""
    return subprocess.Popen([sys.executable, "-m", "dashboard", "consume", "--name", name,
                             "--workers", str(workers), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _ledger(engine) -> int:
    return F.count(engine, feed_message)


def _workload(n_events: int):
    msgs, invalid = [], []
    for i in range(n_events):
        msgs.append(F.reported(f"K{i}", i % 3))
    for i in range(n_events):
        msgs.append(F.step(f"K{i}", 2, "registered"))
    for i in range(n_events // 4):
        msgs.append(F.position(f"W{i % 40}", minutes_ago=i % 90))
        msgs.append(F.patrol(f"S{i % 40:06d}", i % 3))
    for i in range(0, len(msgs), 97):  # duplicates: the same message id again, later in the stream
        msgs.append(dict(msgs[i]))
    for i in range(150):
        invalid.append(F.reported(f"OUT{i}", location=F.OUTSIDE))
    return msgs, invalid


@pytest.fixture
def store(stack):
    db_url, redis_url = stack
    engine = make_engine(db_url)
    migrate(engine)
    F.seed_regions(engine)
    r = connect(redis_url)
    yield db_url, redis_url, engine, r
    r.close()
    engine.dispose()


def test_feed020_exactly_once_across_sigkill_mid_batch(store, tmp_path):
    db_url, redis_url, engine, r = store
    n_events = 6000
    msgs, invalid = _workload(n_events)
    mixed = msgs[:]
    for k, bad in enumerate(invalid):  # invalid messages spread through the stream
        mixed.insert(k * len(msgs) // len(invalid), bad)
    ids = F.xadd_all(r, mixed)
    total = len(mixed)
    assert total >= 15_000
    invalid_ids = {ids[i] for i, m in enumerate(mixed) if m.get("location") == F.OUTSIDE}
    env = _env(db_url, redis_url, tmp_path)

    kills_mid_batch = 0
    for attempt in range(4):  # kill -9 while it works, until a kill caught a batch in flight
        proc = _start(env, "k1")
        start = _ledger(engine)
        deadline = time.monotonic() + 120
        while _ledger(engine) < start + 1500 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        pending = r.xpending(STREAM, GROUP)["pending"]
        if pending:
            kills_mid_batch += 1  # delivered, not acknowledged: the kill hit a batch
        if kills_mid_batch >= 2 or _ledger(engine) > total * 0.7:
            break
    assert kills_mid_batch >= 1
    assert _ledger(engine) < len(msgs)  # it really was stopped half way

    # a different consumer finishes: it claims k1's pending entries once they are idle
    proc = _start(_env(db_url, redis_url, tmp_path, CLAIM_IDLE_MS=300), "k2", "--burst")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]

    unique = {m["id"]: m for m in msgs}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(feed_message)).scalar_one() == len(unique)
        assert conn.execute(sa.select(sa.func.count()).select_from(event)).scalar_one() == n_events
        assert conn.execute(sa.select(sa.func.count()).select_from(event).where(event.c.last_seq == 2)
                            ).scalar_one() == n_events
        assert conn.execute(sa.select(sa.func.count()).select_from(event_step)).scalar_one() == n_events
        n_patrol = sum(1 for m in unique.values() if m["type"] == "patrol.checkin")
        assert conn.execute(sa.select(sa.func.count()).select_from(patrol)).scalar_one() == n_patrol
        assert conn.execute(sa.select(sa.func.count()).select_from(position)).scalar_one() == 40
        assert conn.execute(sa.select(sa.func.count()).select_from(feed_pending)).scalar_one() == 0
        # no message applied twice: one step row per (event, seq) and per message id
        dup_steps = conn.execute(sa.select(event_step.c.event_id).group_by(event_step.c.event_id)
                                 .having(sa.func.count() > 1)).all()
        assert dup_steps == []
    assert r.xpending(STREAM, GROUP)["pending"] == 0
    dead_ids = {d["stream_id"] for d in F.dead_letters(r)}
    assert dead_ids == invalid_ids  # a dead letter may repeat after a kill; none is missing or extra
    assert r.xlen(DEAD_LETTER) >= len(invalid_ids)


def test_feed021_sigterm_finishes_the_batch_acks_and_exits_0(store, tmp_path):
    db_url, redis_url, engine, r = store
    msgs = [F.reported(f"T{i}", i % 3) for i in range(8000)]
    F.xadd_all(r, msgs)
    proc = _start(_env(db_url, redis_url, tmp_path), "t1")
    deadline = time.monotonic() + 120
    while _ledger(engine) < 1000 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"applied=" in out
    stored = _ledger(engine)
    assert 0 < stored
    # whatever it read it committed and acknowledged: nothing is left pending for it
    assert r.xpending(STREAM, GROUP)["pending"] == 0
    info = {c["name"].decode(): c for c in r.xinfo_consumers(STREAM, GROUP)}
    assert info["t1"]["pending"] == 0
    assert F.count(engine, event) == stored


def _worker_pids(proc: subprocess.Popen, timeout: float = 60) -> list[int]:
    """The pids the pool logs when its workers start (a JSON line on stderr)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "consumer workers started":
            return rec["pids"]
    raise AssertionError("the pool never said its workers started")


def _members(r) -> set[str]:
    return {c["name"].decode() for c in r.xinfo_consumers(STREAM, GROUP)}


def test_feed022_worker_pool_drains_the_stream_once(store, tmp_path):
    db_url, redis_url, engine, r = store
    msgs, _invalid = _workload(3000)
    F.xadd_all(r, msgs)
    proc = _start(_env(db_url, redis_url, tmp_path, LOG_LEVEL="INFO"), "p", "--burst", workers=2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    lines = out.decode().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["p-1", "p-2"]
    applied = sum(int(part.split("=")[1]) for line in lines for part in line.split() if part.startswith("applied="))
    unique = {m["id"]: m for m in msgs}
    assert applied == len(unique)  # between them, each message once
    assert _ledger(engine) == len(unique)
    assert F.count(engine, event_step) == 3000 and F.count(engine, feed_pending) == 0
    assert r.xpending(STREAM, GROUP)["pending"] == 0
    names = {c["name"].decode() for c in r.xinfo_consumers(STREAM, GROUP)}
    assert {"p-1", "p-2"} <= names


def test_feed023_worker_pool_stops_on_sigterm_and_dies_with_its_parent(store, tmp_path):
    db_url, redis_url, engine, r = store
    F.xadd_all(r, [F.reported(f"P{i}", i % 3) for i in range(40_000)])
    env = _env(db_url, redis_url, tmp_path, LOG_LEVEL="INFO")

    # SIGTERM while the workers are still starting: a clean stop too
    proc = _start(env, "e", workers=2)
    pids = _worker_pids(proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert not any(F.alive(p) for p in pids)

    # SIGTERM to the pool: each worker finishes its batch, acks it and exits; the pool exits 0
    proc = _start(env, "s", workers=2)
    pids = _worker_pids(proc)
    assert len(pids) == 2
    deadline = time.monotonic() + 120
    while (_ledger(engine) < 1000 or not {"s-1", "s-2"} <= _members(r)) and time.monotonic() < deadline:
        time.sleep(0.02)  # both workers are consuming
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert sorted(line.split(":")[0] for line in out.decode().splitlines()) == ["s-1", "s-2"]
    assert not any(F.alive(p) for p in pids)
    assert r.xpending(STREAM, GROUP)["pending"] == 0
    stored = _ledger(engine)
    assert 1000 <= stored < 40_000 and F.count(engine, event) == stored

    # SIGKILL to the pool: its workers are told to stop (no orphan keeps consuming)
    proc = _start(env, "o", workers=2)
    pids = _worker_pids(proc)
    while _ledger(engine) < stored + 1000 and time.monotonic() < deadline + 120:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    gone_by = time.monotonic() + 30
    while any(F.alive(p) for p in pids) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not any(F.alive(p) for p in pids)
    assert r.xpending(STREAM, GROUP)["pending"] == 0  # they finished their batches before exiting
    assert F.count(engine, event) == _ledger(engine) < 40_000


# the stop arrives while the consumer opens its store (migrations, Redis), before it reads anything
_STOP_WHILE_OPENING = """
import os, signal, sys
from dashboard import services
real = services.Services.open.__func__
def opening(cls, settings, **kw):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(cls, settings, **kw)
services.Services.open = classmethod(opening)
from dashboard.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_feed024_sigterm_while_starting_is_a_clean_stop(store, tmp_path, workers):
    db_url, redis_url, engine, r = store
    F.xadd_all(r, [F.reported(f"U{i}", i % 3) for i in range(500)])
    name = f"u{workers}"
    proc = subprocess.Popen([sys.executable, "-c", _STOP_WHILE_OPENING, "consume", "--name", name,
                             "--workers", str(workers)], cwd=ROOT, env=_env(db_url, redis_url, tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    # not killed by the signal's default action: it heard the stop, finished opening and exited 0
    assert proc.returncode == 0, (proc.returncode, err.decode()[-2000:])
    if workers == 1:
        assert out.decode().split() == ["batches=0", "applied=0", "duplicates=0", "dead=0", "parked=0",
                                        "released=0", "stale=0"], out
    else:
        assert out == b""  # no worker was started
    assert _ledger(engine) == 0
    assert not r.xinfo_groups(STREAM)  # it never joined the group, so it read nothing


@pytest.mark.parametrize("workers", [1, 2])
def test_feed025_every_worker_counts_on_the_settings_calendar(store, tmp_path, workers):
    # A pool's workers have no services of their own: they once built their case clock from the
    # defaults, so HOLIDAYS_FILE (and the other case settings) reached only a one-process consumer.
    db_url, redis_url, engine, r = store
    path = tmp_path / "holidays.yaml"
    path.write_text("2027:\n  holidays:\n    2027-01-01: 元旦\n    2027-01-02: 元旦\n    2027-01-03: 元旦\n",
                    encoding="utf-8")
    at = "2026-12-01T09:00:00+08:00"
    F.xadd_all(r, [F.envelope("Q-r", type="event.reported", event_id="Q", category="environment",
                              subcategory="clutter", region_code=F.GRIDS[0], occurred_at="2026-12-01T08:50:00+08:00"),
                   F.envelope("Q-s2", type="event.step", event_id="Q", seq=2, step="registered",
                              region_code=F.GRIDS[0], occurred_at=at, deadline_at="2027-01-04T12:00:00+08:00")])
    proc = _start(_env(db_url, redis_url, tmp_path, HOLIDAYS_FILE=path, DUE_SOON_SHARE="0.5"), "h", "--burst",
                  workers=workers)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    with engine.connect() as conn:
        row = conn.execute(sa.select(event).where(event.c.id == "Q")).mappings().one()
    # 1 December 09:00 to 4 January 12:00 with 1 January off: 175.5 working hours (183 on weekdays,
    # provisional); 即将到期 at half of them (DUE_SOON_SHARE): 87.75 h before it, 4 January 3.5 h,
    # 28-31 December 30 h, 21-25 December 37.5 h, 17-18 December 15 h, then 1.75 h of Wednesday
    # 16 December: from 15:45 that day
    assert row["deadline_provisional"] is False and row["allowance_s"] == 175.5 * 3600
    assert row["due_soon_at"].isoformat() == "2026-12-16T07:45:00+00:00"
