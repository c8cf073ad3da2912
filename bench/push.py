"""Hundreds of live pages on one machine: prints one `name = value` line per figure.

    python bench/push.py [--pages 1000] [--scopes 20] [--rate 20] [--seconds 40] [--web-workers 1]
                         [--wall-runs 3] [--old /tmp/e-old] [--skip-baseline]

The server is the real one-command app, `python -m dashboard serve --no-demo` (uvicorn, the ASGI
front, the consumer in the same process), on a district built like bench/wall.py's (573 grids,
5,000 open events) in SQLite and the embedded Redis. The pages are simulated clients over real
HTTP on loopback (aiohttp, one process), --pages of them spread evenly over --scopes scopes (the 10
streets, then one community of each), each reading /api/v1/live?scope=... like the wall's
EventSource. This script publishes --rate reports a second through the real path (validated XADD
to the feed stream; the consumer stores each and publishes its delta; the push fans it out).

Figures (issue 15, Speed):
  push_pages               pages opened at once; push_connected: how many got their hello
  push_p50_ms, push_p95_ms publish -> a page has parsed the delta, over every (report, page in its
                           scope) pair (same machine, same clock)                    (target p95 < 250)
  push_misdelivered        deltas a page received outside its scope                  (target 0)
  push_lost                (report, page in its scope) pairs never received, 10 s after the last
                           publish                                                   (target 0)
  push_duplicates          the same report received twice by a page
  push_wall_load_s         the district wall in headless Chromium (bench/wall.py's load_once:
                           navigation -> grids and open events drawn, a cold browser), median of
                           --wall-runs, while the pages are open and reports flow  (target < 1.5)
  push_wall_load_s_no_pages  the floor: the same loads on the same server before any page opens
  push_rss_per_page_kb     the web server's RSS growth per open page: (RSS with the pages open -
                           RSS before, after a warm-up) / connected pages          (target < 100)
  push_healthz_ms          /healthz answer time with the pages open and reports flowing
  push_server_cpu_share    CPU seconds the server's processes used per second over 10 s with the
                           pages open and reports flowing, before the wall loads (1.0 = one core):
                           the figure the machine's other load distorts least
  push_p95_ms_without_wall_loads  the same p95 over the receipts while no Chromium wall load ran
  push_stage_stored_p95_ms publish -> the delta's stream entry (the consumer validated, stored,
                           committed and published it; the entry id's time is Redis's clock)
  push_stage_pushed_p50_ms / _p95_ms  the delta's entry -> parsed by the page: the push alone
Baseline, in the same run: the code of issue 15's starting commit, thread per page, from a worktree
(`git worktree add /tmp/e-old 403b7c9`, then --old /tmp/e-old; without it the baseline is skipped):
  *_thread_per_page        the same figures under its `python -m dashboard` (werkzeug, threaded),
                           on a district built by that code the same way
  push_pages_answering_gthread16  its documented `gunicorn -k gthread --threads 16 -w 1
                           dashboard.wsgi:server`: the most open pages at which /healthz still
                           answered within 10 s (pages opened in steps)
The simulated pages run at nice 10 (they stand for browsers elsewhere); the server, the publisher
and Chromium at normal priority, or at --server-nice (the same for the baseline). Every loop is bounded in count and time; only 127.0.0.1 is used.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

DISTRICT = dict(streets=10, communities=5, grids=573, events=5000, buildings=12_500)
BUILD = """
import sys, json
from pathlib import Path
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/bench")
from dashboard import synthetic_city as sc
from wall import build, make_services
svc = make_services(Path({tmp!r}))
rows, took = build(svc, bbox=sc.BBOX, **{district!r})
out = {{"grids": [[r.code, *r.geom.representative_point().coords[0]] for r in rows if r.level == "grid"],
       "streets": [r.code for r in rows if r.level == "street"],
       "communities": [[r.code, r.parent_code] for r in rows if r.level == "community"], "took": took}}
svc.close()
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def build_district(root: Path, tmp: Path) -> dict:
    """The district, built by the code in ``root`` (this tree, or the baseline's worktree)."""
    code = BUILD.format(root=str(root), tmp=str(tmp), district=DISTRICT)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def scopes_of(district: dict, n: int) -> list[str]:
    streets = district["streets"]
    first = {}
    for code, parent in district["communities"]:
        first.setdefault(parent, code)
    return (streets + [first[s] for s in streets if s in first])[:n]


NICE = {"machines": 0}  # --server-nice: the server's and the wall browser's niceness


def set_nice(value: int) -> None:
    """This thread's niceness (Linux: per thread; lowering it needs root, else it stays)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), value)
    except OSError:
        pass


def cpu_s(pids: list[int]) -> float:
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / hz


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def web_pids(proc: subprocess.Popen) -> list[int]:
    """The serving processes: uvicorn's workers when there are some, else the process itself."""
    kids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == proc.pid and b"multiprocessing-fork" in cmd:
            kids.append(int(pid))
    return kids or [proc.pid]


class Server:
    def __init__(self, cmd: list[str], cwd: Path, env: dict, port: int, log: Path, nice: int = 0):
        self.port = port
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 180.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code in (200, 503):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not answer")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def timed_get(url: str, timeout: float) -> float | None:
    t0 = time.perf_counter()
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException:
        return None
    return (time.perf_counter() - t0) * 1000


# --- the simulated pages ----------------------------------------------------------------------------

class Pages:
    def __init__(self, url: str, scopes: list[str], n: int):
        self.url = url
        self.scope_of = [scopes[i % len(scopes)] for i in range(n)]
        self.connected = [False] * n
        self.got: list[set] = [set() for _ in range(n)]
        self.published: dict[str, tuple[float, str]] = {}  # report id -> (time, grid code)
        self.latencies: list[float] = []
        self.quiet: list[float] = []       # latencies while no wall load runs
        self.stored: list[float] = []      # publish -> the delta's entry (the consumer's commit)
        self.pushed: list[float] = []      # the delta's entry -> parsed by the page (the push itself)
        self.wall_busy = False
        self.misdelivered = 0
        self.duplicates = 0
        self.errors = 0
        self.tasks: list[asyncio.Task] = []

    def handle(self, i: int, block: bytes, now: float) -> None:
        event, data, sid = None, [], None
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"id:"):
                sid = line[3:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if event == b"hello":
            self.connected[i] = True
            return
        if event is not None or not data:
            return
        scope = self.scope_of[i]
        for d in orjson.loads(b"\n".join(data)):
            if not str(d.get("g") or "").startswith(scope):
                self.misdelivered += 1
            rid = d.get("id")
            if isinstance(rid, str) and rid in self.published:
                if rid in self.got[i]:
                    self.duplicates += 1
                    continue
                self.got[i].add(rid)
                ms = (now - self.published[rid][0]) * 1000
                self.latencies.append(ms)
                if not self.wall_busy:
                    self.quiet.append(ms)
                if sid:  # a stream id's first part is the Redis server's clock (ms) at the XADD
                    at = int(sid.split(b"-")[0]) / 1000
                    self.stored.append((at - self.published[rid][0]) * 1000)
                    self.pushed.append((now - at) * 1000)

    def params(self, i: int) -> dict:
        """The query of page ``i``'s /api/v1/live request."""
        return {"scope": self.scope_of[i]}

    async def one(self, session: aiohttp.ClientSession, i: int) -> None:
        try:
            async with session.get(self.url + "/api/v1/live", params=self.params(i)) as resp:
                if resp.status != 200:  # refused: a page that never gets its push
                    self.errors += 1
                    return
                buf = b""
                async for chunk in resp.content.iter_any():
                    now = time.time()
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        self.handle(i, block, now)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a page the server refused or dropped
            self.errors += 1

    def open(self, session, n: int | None = None) -> None:
        start = len(self.tasks)
        end = len(self.scope_of) if n is None else min(len(self.scope_of), start + n)
        self.tasks += [asyncio.ensure_future(self.one(session, i)) for i in range(start, end)]

    def expected(self) -> int:
        return sum(1 for i, scope in enumerate(self.scope_of) if self.connected[i]
                   for _, (_, g) in self.published.items() if g.startswith(scope))

    def lost(self) -> int:
        out = 0
        for i, scope in enumerate(self.scope_of):
            if not self.connected[i]:
                continue
            want = {rid for rid, (_, g) in self.published.items() if g.startswith(scope)}
            out += len(want - self.got[i])
        return out


def publisher(redis_url: str, grids: list, pages: Pages, rate: float, seconds: float, stop: threading.Event) -> None:
    from dashboard.feed.publish import publish

    set_nice(0)
    r = redis.Redis.from_url(redis_url)
    tag = uuid.uuid4().hex[:6]
    t0 = time.monotonic()
    k = 0
    while not stop.is_set() and k < int(rate * seconds):
        code, lon, lat = grids[(k * 7919) % len(grids)]
        rid = f"pb-{tag}-{k}"
        msg = {"v": 1, "id": f"pbm-{tag}-{k}", "source": "grid_patrol", "type": "event.reported",
               "occurred_at": datetime.now(timezone.utc).isoformat(), "actor": {"kind": "staff", "id": "S000001"},
               "event_id": rid, "category": "safety", "subcategory": "gas", "description": "推送压测",
               "location": {"lon": lon, "lat": lat}}
        pages.published[rid] = (time.time(), code)
        publish(r, msg)
        k += 1
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    r.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def drive(srv: Server, redis_url: str, district: dict, args, label: str, wall: bool) -> dict:
    """Open the pages, publish, measure; returns the figures."""
    scopes = scopes_of(district, args.scopes)
    pages = Pages(srv.url, scopes, args.pages)
    out: dict = {"pages": args.pages}
    for _ in range(3):  # warm the server: the layout, the wall's data
        timed_get(srv.url + "/wall", 60)
        timed_get(srv.url + "/healthz", 30)
    if wall:  # the floor, in the same run and the same way: no page open, no report flowing
        out["wall_no_pages"] = wall_loads(srv.url + "/wall", args.wall_runs)
    time.sleep(2)
    pids = web_pids(srv.proc)
    rss0 = rss_kb(pids)
    # The simulated pages stand for browsers on other machines: they run at nice 10 so that, on a
    # shared machine, their parsing does not take the server's CPU. The server, the publisher and
    # Chromium keep the normal priority (niceness is per thread on Linux; children inherit it).
    set_nice(10)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        pages.open(session)
        end = time.monotonic() + args.connect_s
        while time.monotonic() < end and not all(pages.connected):
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)
        out["connected"] = sum(pages.connected)
        out["connect_errors"] = pages.errors
        rss1 = rss_kb(web_pids(srv.proc))
        out["rss_per_page_kb"] = (rss1 - rss0) / max(1, out["connected"])
        stop = threading.Event()
        pub = threading.Thread(target=publisher, args=(redis_url, district["grids"], pages, args.rate, args.seconds, stop),
                               daemon=True)
        pub.start()
        await asyncio.sleep(3)
        loop = asyncio.get_running_loop()
        out["healthz_ms"] = await loop.run_in_executor(None, timed_get, srv.url + "/healthz", 30)
        cpu0, t0 = cpu_s(web_pids(srv.proc)), time.monotonic()
        await asyncio.sleep(10)  # a window without wall loads: what the push and the consumer cost
        out["cpu_share"] = (cpu_s(web_pids(srv.proc)) - cpu0) / (time.monotonic() - t0)
        if wall:
            pages.wall_busy = True
            out["wall"] = await loop.run_in_executor(None, wall_loads, srv.url + "/wall", args.wall_runs)
            pages.wall_busy = False
        deadline = time.monotonic() + args.seconds + 60
        while pub.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.sleep(args.drain_s)
        for t in pages.tasks:
            t.cancel()
        await asyncio.gather(*pages.tasks, return_exceptions=True)
    set_nice(0)
    out.update(published=len(pages.published), receipts=len(pages.latencies), expected=pages.expected(),
               p50=pct(pages.latencies, 50), p95=pct(pages.latencies, 95), quiet_p95=pct(pages.quiet, 95),
               stored_p95=pct(pages.stored, 95), pushed_p50=pct(pages.pushed, 50), pushed_p95=pct(pages.pushed, 95),
               misdelivered=pages.misdelivered,
               lost=pages.lost(), duplicates=pages.duplicates)
    return out


def wall_loads(url: str, runs: int):
    from wall import load_once

    set_nice(NICE["machines"])
    times = []
    for _ in range(runs):
        try:
            times.append(load_once(url)["load_s"])
        except Exception as exc:  # noqa: BLE001 - the wall never drew: reported as such
            return f"none ({exc.__class__.__name__}: no wall within the load's 60 s wait)"
    return statistics.median(times)


def print_figures(out: dict, suffix: str = "") -> None:
    def line(name, value):
        if isinstance(value, float):
            value = f"{value:.1f}" if value == value else "nan"
        print(f"{name}{suffix} = {value}", flush=True)

    line("push_pages", out["pages"])
    line("push_connected", out["connected"])
    line("push_p50_ms", out["p50"])
    line("push_p95_ms", out["p95"])
    line("push_p95_ms_without_wall_loads", out["quiet_p95"])
    line("push_stage_stored_p95_ms", out["stored_p95"])
    line("push_stage_pushed_p50_ms", out["pushed_p50"])
    line("push_stage_pushed_p95_ms", out["pushed_p95"])
    line("push_misdelivered", out["misdelivered"])
    line("push_lost", out["lost"])
    line("push_duplicates", out["duplicates"])
    line("push_receipts", f"{out['receipts']}/{out['expected']}")
    line("push_published", out["published"])
    for key, name in (("wall", "push_wall_load_s"), ("wall_no_pages", "push_wall_load_s_no_pages")):
        if key in out:
            w = out[key]
            line(name, f"{w:.3f}" if isinstance(w, float) else w)
    line("push_rss_per_page_kb", out["rss_per_page_kb"])
    line("push_server_cpu_share", f"{out['cpu_share']:.2f}")
    line("push_healthz_ms", out["healthz_ms"] if out["healthz_ms"] is not None else "none (no answer in 30 s)")


def gthread_steps(old: Path, tmp: Path, redis_url: str, steps=(4, 8, 12, 14, 15, 16, 17, 24)) -> int:
    """Under the old documented gunicorn gthread command: the most open pages with /healthz answering."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}", REDIS_URL=redis_url,
               VAR_DIR=str(tmp / "var"), PYTHONPATH=str(old), LOG_LEVEL="WARNING", ACCESS_REQUIRED="false")
    srv = Server([sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "16", "-w", "1",
                  "-b", f"127.0.0.1:{port}", "dashboard.wsgi:server"], old, env, port, tmp / "gunicorn.log")
    socks = []
    best = 0
    try:
        srv.wait()
        for n in steps:
            while len(socks) < n:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET /api/v1/live?scope=370202 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                socks.append(s)
            time.sleep(3)
            if timed_get(srv.url + "/healthz", 10) is None:
                break
            best = n
    finally:
        for s in socks:
            s.close()
        srv.stop()
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--scopes", type=int, default=20)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--drain-s", type=float, default=10.0)
    ap.add_argument("--connect-s", type=float, default=90.0)
    ap.add_argument("--wall-runs", type=int, default=3)
    ap.add_argument("--web-workers", type=int, default=1)
    ap.add_argument("--old", default="/tmp/e-old", help="a worktree of the starting commit (the baseline)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--keep", help="keep the built districts in this folder (and reuse them)")
    ap.add_argument("--server-nice", type=int, default=0,
                    help="niceness of the server (all its threads and processes) and of Chromium, e.g. -10 on a "
                         "machine shared with other jobs, to stand for dedicated machines (needs root)")
    args = ap.parse_args(argv)
    NICE["machines"] = args.server_nice
    print(f"# fd limit {raise_fd_limit()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"server and Chromium at nice {args.server_nice}, simulated pages at nice 10", flush=True)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-push-"))
    try:
        new_dir = base / "new"
        if not (new_dir / "district.json").exists():
            new_dir.mkdir(parents=True, exist_ok=True)
            district = build_district(ROOT, new_dir)
            (new_dir / "district.json").write_text(json.dumps(district))
        district = json.loads((new_dir / "district.json").read_text())
        run_new(args, new_dir, district)
        if not args.skip_baseline:
            old = Path(args.old)
            if not (old / "dashboard").is_dir():
                print(f"# no baseline worktree at {old}: git worktree add {old} <starting commit>")
                return 0
            old_dir = base / "old"
            if not (old_dir / "district.json").exists():
                old_dir.mkdir(parents=True, exist_ok=True)
                (old_dir / "district.json").write_text(json.dumps(build_district(old, old_dir)))
            run_old(args, old, old_dir, district)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def _serve(root: Path, tmp: Path, port: int, extra: list[str]) -> Server:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}", VAR_DIR=str(tmp / "var"), PYTHONPATH=str(root),
               LOG_LEVEL="WARNING", SECRET_KEY=uuid.uuid4().hex * 2,
               # the push's fan-out is measured here, as before sign-in existed; the scoped, signed-in
               # push is bench/access.py's (push_misdelivered, push_p95_ms)
               ACCESS_REQUIRED="false")
    return Server([sys.executable, "-m", "dashboard", "serve", "--no-demo", "--port", str(port), *extra],
                  root, env, port, tmp / "serve.log", nice=NICE["machines"])


def run_new(args, tmp: Path, district: dict) -> None:
    port = free_port()
    srv = _serve(ROOT, tmp, port, ["--web-workers", str(args.web_workers)])
    try:
        srv.wait()
        out = asyncio.run(drive(srv, f"unix://{tmp / 'var' / 'redis' / 'redis.sock'}", district, args, "new", True))
    finally:
        srv.stop()
    print(f"# new design: python -m dashboard serve --no-demo --web-workers {args.web_workers} (uvicorn, one push "
          f"reader per process); pages over {args.scopes} scopes, {args.rate}/s for {args.seconds} s", flush=True)
    print_figures(out)


def run_old(args, old: Path, tmp: Path, district: dict) -> None:
    port = free_port()
    srv = _serve(old, tmp, port, [])
    try:
        srv.wait()
        out = asyncio.run(drive(srv, f"unix://{tmp / 'var' / 'redis' / 'redis.sock'}", district, args, "old", True))
    finally:
        srv.stop()
    print("# baseline: the starting commit's python -m dashboard (werkzeug threaded, a thread and a Redis "
          "connection per page), same district, pages and rate", flush=True)
    print_figures(out, "_thread_per_page")
    from dashboard.redis_server import redis_server_binary

    sock = tmp / "gthread-redis.sock"
    rs = subprocess.Popen([redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
                           "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < end:
            time.sleep(0.05)
        n = gthread_steps(old, tmp, f"unix://{sock}")
    finally:
        rs.terminate()
        rs.wait(10)
    print("# baseline: the starting commit's documented gunicorn -k gthread --threads 16 -w 1 dashboard.wsgi:server", flush=True)
    print(f"push_pages_answering_gthread16 = {n}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
