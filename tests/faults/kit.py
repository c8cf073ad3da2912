"""Pieces the fault tests share: consumer processes, store snapshots, a clean replay."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, feed_pending, hazard, patrol, position
from tests.unit import feed_support as F

from .procs import popen, wait_until

ROOT = Path(__file__).resolve().parents[2]


def env_for(db_url: str, redis_url: str, var_dir: Path, **extra) -> dict:
    env = dict(os.environ)
    for k in ("REDIS_SENTINELS", "REDIS_WAIT_REPLICAS", "CONSUMER_WORKERS"):
        env.pop(k, None)  # only what the test sets
    env.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "VAR_DIR": str(var_dir), "DEMO": "0",
                "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
                # the fault suite counts what kills and restarts lose or double, through open pages that
                # are not signed in: access off here (on by default); who may open a page is test_access110
                "ACCESS_REQUIRED": "false",
                # no automatic escalation sweep: the workload's cases are hours past their deadlines, and
                # an escalation between two of the producer's steps refuses the next one (the suite
                # counts kills and restarts; escalation racing is test_cases142 and test_cases230)
                "ESCALATION_SWEEP_S": "0"})
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


# columns written at apply time (the clock of the consumer), not from the message; and the likely-
# duplicate flag, which names the open case a consumer knew of first (docs/cases.md: with several
# consumers that depends on which committed first, so a clean replay may name another of the same spot)
_APPLY_TIME = {"updated_at", "applied_at", "duplicate_of"}


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


def catches_sigterm(pid: int) -> bool:
    """The process has its own SIGTERM handler (Linux: the caught-signals mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(mask, 16) >> (signal.SIGTERM - 1) & 1)


def stop(proc: subprocess.Popen, timeout: float = 60) -> str:
    """SIGTERM once the process can hear it, wait, and the stats line(s) it printed.

    A consumer restarted just before the end may still be in the interpreter's start-up, where
    SIGTERM is still the default (die at once, print nothing); the stop a test means is the one
    the consumer handles, so it waits for the handler first."""
    if proc.poll() is None:
        wait_until(lambda: catches_sigterm(proc.pid) or proc.poll() is not None, 60, step=0.02)
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return (out or b"").decode(errors="replace").strip()


# --- a served app and what a screen sees --------------------------------------------------------
def start_server(env: dict, port: int, log: Path, *args: str) -> subprocess.Popen:
    """``python -m dashboard serve --no-demo`` (the production server, with its consumer) on ``port``."""
    env = dict(env, SECRET_KEY=env.get("SECRET_KEY") or "faults-test-secret-key-0123456789abcdef",
               INGEST_API_KEYS="faults-key", API_RATE_LIMIT="100000/second", API_READ_RATE_LIMIT="100000/second")
    out = open(log, "ab")
    return popen([sys.executable, "-m", "dashboard", "serve", "--no-demo", "--host", "127.0.0.1",
                  "--port", str(port), *args], cwd=ROOT, env=env, stdout=out, stderr=out)


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> bool:
    import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            requests.get(url, timeout=2)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


class LivePage(threading.Thread):
    """An open page's live connection: GET /api/v1/live as a browser's EventSource reads it
    (Last-Event-ID on reconnect), recording each event with its arrival time."""

    def __init__(self, base: str, scope: str | None = None, reconnect: bool = False):
        super().__init__(daemon=True)
        self.base, self.scope, self.reconnect = base, scope, reconnect
        self.events: list[dict] = []   # {"t", "event", "id", "data", "conn"}
        self.last_id: str | None = None
        self.connections = 0
        self.stop_event = threading.Event()
        self.resp = None

    def run(self):
        import requests

        while not self.stop_event.is_set():
            headers = {"Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                params = {"scope": self.scope} if self.scope else {}
                with requests.get(f"{self.base}/api/v1/live", params=params, headers=headers, stream=True,
                                  timeout=(3, 10)) as resp:
                    self.resp = resp
                    self.connections += 1
                    self._read(resp)
            except Exception:  # noqa: BLE001 - the connection broke: a browser reconnects
                pass
            if not self.reconnect:
                return
            self.stop_event.wait(1.0)  # the server's retry: 1000

    def _read(self, resp):
        ev = {"event": None, "id": None, "data": []}
        for raw in resp.iter_lines(decode_unicode=True):
            if self.stop_event.is_set():
                return
            if raw == "":
                if ev["id"] is not None:
                    self.last_id = ev["id"]   # an id alone (a skip comment) moves the resume point
                if ev["data"]:                # like EventSource: nothing is dispatched without data
                    data = "\n".join(ev["data"])
                    try:
                        data = json.loads(data) if data else None
                    except ValueError:
                        pass
                    self.events.append({"t": time.monotonic(), "event": ev["event"] or "message", "id": ev["id"],
                                        "data": data, "conn": self.connections})
                ev = {"event": None, "id": None, "data": []}
                continue
            if raw.startswith(":"):
                continue
            field, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                ev["data"].append(value)
            elif field in ("event", "id"):
                ev[field] = value

    def close(self):
        self.stop_event.set()
        try:
            if self.resp is not None:
                self.resp.close()
        except Exception:  # noqa: BLE001
            pass

    def first(self, pred, after: float = 0.0):
        for e in list(self.events):
            if e["t"] >= after and pred(e):
                return e
        return None


class HealthPoller(threading.Thread):
    """/healthz every 0.25 s: (time, status code or None, body)."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base = base
        self.samples: list[tuple[float, int | None, dict]] = []
        self.stop_event = threading.Event()

    def run(self):
        import requests

        while not self.stop_event.is_set():
            try:
                r = requests.get(f"{self.base}/healthz", timeout=4)
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                self.samples.append((time.monotonic(), r.status_code, body))
            except Exception:  # noqa: BLE001
                self.samples.append((time.monotonic(), None, {}))
            self.stop_event.wait(0.25)

    def first(self, pred, after: float):
        for t, code, body in list(self.samples):
            if t >= after and pred(code, body):
                return t
        return None
