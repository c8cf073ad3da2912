"""A web worker SIGKILLed with live pages open (``python -m dashboard serve --web-workers 2``):
its pages reconnect (to the other worker, or the one the supervisor starts again) with
Last-Event-ID, and each page's screen has every delta of its scope exactly once: no gap,
no duplicate, nothing of another scope."""
from __future__ import annotations

import signal
import threading
import time

import psutil

from dashboard.feed.contract import DELTAS
from dashboard.feed.deltas import decode
from dashboard.feed.publish import publish
from dashboard.redis_server import connect
from dashboard.store.scope import code_in_scope
from tests.unit import feed_support as F

from . import kit
from .procs import RedisNode, free_port, report, wait_until

PAGES = 8


def _workers(server_pid: int, port: int) -> dict[int, int]:
    """Worker pid -> its established connections on ``port``."""
    out = {}
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            conns = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in conns) or \
                any(c.laddr and c.laddr.port == port for c in conns):
            out[child.pid] = sum(1 for c in conns if c.laddr and c.laddr.port == port
                                 and c.status == psutil.CONN_ESTABLISHED)
    return out


def test_faults007_web_worker_killed_with_pages_open(procs, tmp_path):
    node = procs.add(RedisNode(tmp_path).start())
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = kit.new_store(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = procs.add(kit.start_server(kit.env_for(db_url, node.url, tmp_path / "var"), port,
                                        tmp_path / "server.log", "--web-workers", "2"))
    assert kit.wait_http(base + "/healthz", server), (tmp_path / "server.log").read_text()[-3000:]
    assert wait_until(lambda: len(_workers(server.pid, port)) == 2, 60), _workers(server.pid, port)

    scopes = [None if i % 2 else F.STREET for i in range(PAGES)]
    pages = [kit.LivePage(base, scope=s, reconnect=True) for s in scopes]
    for p in pages:
        p.start()
    assert wait_until(lambda: all(p.first(lambda e: e["event"] == "hello") for p in pages), 60)

    r = connect(node.url)
    stop = threading.Event()
    sent = []

    def produce():
        i = 0
        while not stop.is_set():  # reports in this street's grids and in the other street's
            publish(r, F.reported(f"WK{i}", i % 4, mid=f"wk{i}"))
            sent.append(i)
            i += 1
            stop.wait(0.05)
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        assert wait_until(lambda: all(p.first(lambda e: e["event"] == "message") for p in pages), 60)
        workers = _workers(server.pid, port)
        victim = max(workers, key=workers.get)     # the worker holding the most pages
        held = workers[victim]
        killed_at = time.monotonic()
        psutil.Process(victim).send_signal(signal.SIGKILL)
        time.sleep(6.0)                             # pages reconnect; the feed goes on
    finally:
        stop.set()
        producer.join(10)
    # everything produced has reached the stream of deltas, and every page has caught up with it
    assert kit.drained(node.client(), 60)
    time.sleep(1.0)
    newest = node.client().xrevrange(DELTAS, "+", "-", count=1)[0][0].decode()
    wait_until(lambda: all(p.last_id and kit_key(p.last_id) >= kit_key(newest) for p in pages), 30)
    for p in pages:
        p.close()

    entries = [(sid.decode(), decode(fields[b"d"])) for sid, fields in node.client().xrange(DELTAS)]
    counts = {"pages": PAGES, "killed_worker_held": held, "reconnected": 0, "gaps": 0, "duplicates": 0,
              "misdelivered": 0, "gap_events": 0, "data_messages": 0}
    problems = []
    for p in pages:
        hello = p.first(lambda e: e["event"] == "hello")
        start = kit_key(hello["id"])
        got = [e for e in p.events if e["event"] == "message"]
        ids = [e["id"] for e in got]
        want = [sid for sid, ds in entries if kit_key(sid) > start
                and any(p.scope is None or code_in_scope(d.get("g"), p.scope) for d in ds)]
        counts["reconnected"] += p.connections > 1
        counts["duplicates"] += len(ids) - len(set(ids))
        counts["gaps"] += len(set(want) - set(ids))
        counts["gap_events"] += sum(1 for e in p.events if e["event"] == "gap")
        counts["data_messages"] += len(ids)
        for e in got:
            counts["misdelivered"] += sum(1 for d in e["data"] if p.scope and not code_in_scope(d.get("g"), p.scope))
        if set(want) != set(ids):
            problems.append((p.scope, p.connections, sorted(set(want) - set(ids))[:3], sorted(set(ids) - set(want))[:3]))
    line = report("faults007 web worker killed", **counts, produced=len(sent),
                  workers_after=len(_workers(server.pid, port)) if server.poll() is None else 0,
                  seconds_after_kill=round(time.monotonic() - killed_at, 1))
    assert held >= 1 and counts["reconnected"] >= 1, line
    assert counts["gaps"] == 0 and counts["duplicates"] == 0 and counts["gap_events"] == 0, line + f" {problems[:3]}"
    assert counts["misdelivered"] == 0 and not problems, line + f" {problems[:3]}"


def kit_key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)
