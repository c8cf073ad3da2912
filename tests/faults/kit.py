"""Pieces the fault tests share: consumer processes, store snapshots, a clean replay."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, feed_pending, hazard, patrol, position
from tests.unit import feed_support as F

from .procs import popen

ROOT = Path(__file__).resolve().parents[2]


def env_for(db_url: str, redis_url: str, var_dir: Path, **extra) -> dict:
    env = dict(os.environ)
    for k in ("REDIS_SENTINELS", "REDIS_WAIT_REPLICAS", "CONSUMER_WORKERS"):
        env.pop(k, None)  # only what the test sets
    env.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "VAR_DIR": str(var_dir), "DEMO": "0",
                "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_consumer(env: dict, name: str, *args: str, workers: int = 1, log: Path | None = None) -> subprocess.Popen:
    """``python -m dashboard consume`` as its own process (stdout piped: the stats line; stderr to ``log``)."""
    err = open(log, "ab") if log else subprocess.DEVNULL
    return popen([sys.executable, "-m", "dashboard", "consume", "--name", name, "--workers", str(workers), *args],
                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)


def new_store(url: str):
    engine = make_engine(url)
    migrate(engine)
    F.seed_regions(engine)
    return engine


def ledger_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(feed_message.c.message_id)).scalars())


# columns written at apply time (the clock of the consumer), not from the message
_APPLY_TIME = {"updated_at", "applied_at"}


def snapshot(engine) -> dict[str, list[tuple]]:
    """What the feed put in the store, comparable between two stores (sorted rows; apply-time
    columns and surrogate keys left out)."""
    out = {}
    for table, drop in ((event, set()), (event_step, {"id"}), (hazard, set()), (position, set()),
                        (patrol, set()), (feed_message, {"stream_id"}), (feed_pending, set())):
        cols = [c for c in table.c if c.name not in _APPLY_TIME | drop]
        with engine.connect() as conn:
            rows = conn.execute(sa.select(*cols)).all()
        out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def diff(a: dict, b: dict, limit: int = 3) -> dict[str, str]:
    """Per table: how the two snapshots differ (empty when equal)."""
    out = {}
    for name in a:
        sa_, sb = set(a[name]), set(b[name])
        if sa_ != sb or len(a[name]) != len(b[name]):
            out[name] = (f"{len(a[name])} vs {len(b[name])} rows; only left {sorted(sa_ - sb, key=repr)[:limit]}; "
                         f"only right {sorted(sb - sa_, key=repr)[:limit]}")
    return out


def drained(r, timeout: float = 120.0) -> bool:
    """The group has read everything and acknowledged it."""
    from dashboard.feed.contract import GROUP, STREAM

    def done():
        info = {g["name"].decode(): g for g in r.xinfo_groups(STREAM)}
        g = info.get(GROUP)
        if g is None:
            return False
        last = r.xrevrange(STREAM, "+", "-", count=1)
        newest = last[0][0].decode() if last else "0-0"
        return g["pending"] == 0 and g["last-delivered-id"].decode() == newest
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if done():
                return True
        except Exception:  # noqa: BLE001 - Redis restarting
            pass
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen, timeout: float = 60) -> str:
    """SIGTERM, wait, and the stats line(s) it printed."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return (out or b"").decode(errors="replace").strip()
