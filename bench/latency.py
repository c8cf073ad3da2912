"""From XADD to the wall: prints one `name = value` line per figure.

    python bench/latency.py [--rate 20] [--seconds 15] [--pages 3]

Figures (issue 3, Speed):
  latency_p50_ms, latency_p95_ms   a report is published (XADD) at --rate per second; the consumer, in
                                   its own process as in production (`python -m dashboard consume`, see
                                   docs: the web server and the consumer are separate processes),
                                   validates and stores it and publishes its delta; the web app's SSE
                                   endpoint (its own process: this script's werkzeug server) pushes it; each of --pages open
                                   walls (headless Chromium) applies it. The time is taken when the event is
                                   both in the ticker and drawn as a marker on the map (live.js and map.js
                                   record Date.now() at those two moments; the later one counts), minus the
                                   publish time (same machine, same clock)      (targets < 50 and < 150)
  latency_polling_p50_ms           the same, measured on pages that ask the store once a second instead
                                   (?poll=1: /api/v1/wall/recent) — the baseline push is compared with
  latency_single_process_p50_ms / _p95_ms
                                   the push figures again with the consumer as a thread inside the web
                                   server's process (the all-in-one `python -m dashboard` demo topology),
                                   where it shares the GIL with the panels' callbacks (--skip-single: not run)
plus latency_samples and latency_missing (events that never showed within 5 s on some page), and
latency_<tag>_stage_{stored,pushed,drawn}_p50_ms: XADD -> committed (the delta's stream id), committed ->
received by the page, received -> in the ticker and on the map. Comment lines (#) give each page's Dash
callback requests during the run (count, median and longest time, as the browser saw them): the
server's share of a tick, which competes with the push for the web process.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import synthetic_city as sc  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.feed.publish import publish  # noqa: E402
from dashboard.services import Services  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from tests.integration.wallkit import AppServer, chrome, wait_for  # noqa: E402

COLLECT = """
const out = {};
for (const id of arguments[0]) {
  const s = wallLive.seen[id] || {}, m = wallMap.drawn[id];
  out[id] = (s.ticker && m) ? [Math.max(s.ticker, m), s.recv || null, s.sid || null] : null;
}
return out;
"""


CALLBACKS = """
return performance.getEntriesByType('resource').filter(function (e) {
  return e.name.indexOf('_dash-update-component') >= 0; }).map(function (e) { return [e.startTime, e.duration]; });
"""


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(srv, svc, rows, *, query: str, pages: int, rate: float, seconds: float, tag: str) -> tuple[list, int]:
    grids = [r for r in rows if r.level == "grid"]
    drivers = []
    try:
        for _ in range(pages):
            d = chrome(1280, 720)
            d.get(srv.url + "/wall" + query)
            wait_for(d, "window.wallReady", 60)
            drivers.append(d)
        if "poll" not in query:
            for d in drivers:
                wait_for(d, "document.querySelector('#feed-status.feed-ok')", 15)
        time.sleep(1.0)
        sent = {}
        n = int(rate * seconds)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            g = grids[(i * 37) % len(grids)]
            c = g.geom.representative_point()
            eid = f"lat-{tag}-{i:05d}"
            msg = {"type": "event.reported", "id": f"m-{eid}", "event_id": eid, "source": "mini_program",
                   "occurred_at": datetime.now(timezone.utc).isoformat(), "location": {"lon": c.x, "lat": c.y},
                   "actor": {"kind": "resident"}, "category": "environment", "subcategory": "garbage",
                   "level": 3, "urgent": False, "description": f"延迟测试 {i}", "address": "测试路"}
            sent[eid] = time.time() * 1000.0
            publish(svc.redis, msg)
        time.sleep(4.0)
        latencies, missing = [], 0
        stages = {"stored": [], "pushed": [], "drawn": []}
        for k, d in enumerate(drivers):
            calls = d.execute_script(CALLBACKS)
            if calls:
                print(f"# {tag} page {k}: {len(calls)} Dash callback requests during the run, median "
                      f"{statistics.median(c[1] for c in calls):.0f} ms, longest {max(c[1] for c in calls):.0f} ms")
        for d in drivers:
            seen = d.execute_script(COLLECT, list(sent))
            for eid, t_pub in sent.items():
                if seen.get(eid):
                    shown, recv, sid = seen[eid]
                    latencies.append(shown - t_pub)
                    if recv and sid:  # the delta's stream id says when the consumer committed it
                        committed = int(sid.split("-")[0])
                        stages["stored"].append(committed - t_pub)
                        stages["pushed"].append(recv - committed)
                        stages["drawn"].append(shown - recv)
                else:
                    missing += 1
        for name, vals in stages.items():
            if vals:
                print(f"latency_{tag}_stage_{name}_p50_ms = {statistics.median(vals):.1f}")
                print(f"latency_{tag}_stage_{name}_p95_ms = {percentile(sorted(vals), 0.95):.1f}")
        return latencies, missing
    finally:
        for d in drivers:
            d.quit()


def consumer_process(settings, svc) -> subprocess.Popen:
    """`python -m dashboard consume` against the same store and Redis: the production topology."""
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=svc.redis_url, VAR_DIR=settings.var_dir,
               DEMO="0")
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-m", "dashboard", "consume", "--name", "bench-consumer"], env=env,
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM: the consumer finishes its batch, acks it and exits
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--tick", type=int, default=1000, help="the pages' LIVE_TICK throttle (ms)")
    ap.add_argument("--skip-single", action="store_true", help="skip the consumer-in-the-web-process run")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)

    single: list = []
    single_missing = 0
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, database_url=f"sqlite:///{Path(tmp) / 'lat.db'}", var_dir=str(Path(tmp) / "var"),
                                     demo=False)
        svc = Services.open(settings)
        rows = sc.city_regions(streets=10, communities=5, total_grids=573)
        sc.insert_regions(svc.engine, rows)
        sc.insert_events(svc.engine, rows, 2000)
        from dashboard.feed.consumer import start_in_thread

        try:
            with AppServer(create_app(settings, svc)) as srv:
                proc = consumer_process(settings, svc)
                try:
                    push, missing = run(srv, svc, rows, query=f"?tick={args.tick}", pages=args.pages, rate=args.rate,
                                        seconds=args.seconds, tag="push")
                    poll, poll_missing = run(srv, svc, rows, query=f"?poll=1&tick={args.tick}", pages=args.pages,
                                             rate=args.rate, seconds=min(args.seconds, 10), tag="poll")
                finally:
                    stop_process(proc)
                if not args.skip_single:
                    stop = threading.Event()
                    consumer = start_in_thread(svc, stop)
                    try:
                        single, single_missing = run(srv, svc, rows, query=f"?tick={args.tick}", pages=args.pages,
                                                     rate=args.rate, seconds=args.seconds, tag="single")
                    finally:
                        stop.set()
                        consumer.join(timeout=10)
        finally:
            svc.close()
    if push:
        print(f"latency_p50_ms = {statistics.median(push):.1f}")
        print(f"latency_p95_ms = {percentile(push, 0.95):.1f}")
    print(f"latency_samples = {len(push)}")
    print(f"latency_missing = {missing}")
    if poll:
        print(f"latency_polling_p50_ms = {statistics.median(poll):.1f}")
        print(f"latency_polling_p95_ms = {percentile(poll, 0.95):.1f}")
    print(f"latency_polling_missing = {poll_missing}")
    if single:
        print(f"latency_single_process_p50_ms = {statistics.median(single):.1f}")
        print(f"latency_single_process_p95_ms = {percentile(single, 0.95):.1f}")
        print(f"latency_single_process_missing = {single_missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
