"""`python -m dashboard` serves through the production server (uvicorn + the ASGI front), in one
command with the embedded Redis and SQLite, with one web process or several behind one port."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from dashboard.push.hub import CLIENT_NAME
from dashboard.settings import Settings
from dashboard.store.engine import make_engine, migrate
from dashboard.web.secret import secret_key
from tests.integration.wallkit import free_port
from tests.processes import end_process

from . import feed_support as F
from .test_feed004_live import Page, hello

ROOT = Path(__file__).resolve().parents[2]


class Served:
    """``python -m dashboard serve --no-demo`` on the embedded pair in ``var``, as a user runs it."""

    def __init__(self, var: Path, *args: str):
        var.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{var / 'grid.db'}")  # the regions the feed's reports land in
        migrate(engine)
        F.seed_regions(engine)
        # ACCESS_REQUIRED is on: the pages and the push are opened as a wall display of the district
        from dashboard.access.users import add_token

        _, self.token = add_token(engine, "web-test", F.DISTRICT, actor="test")
        engine.dispose()
        self.var = var
        self.port = free_port(9580)
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "WEB_WORKERS")}
        # outside demo mode the session key must come from the environment (the access layer refuses to
        # start without one); every worker then gets it from the parent
        env.update(VAR_DIR=str(var), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", SECRET_KEY="web-test-" + "k" * 40)
        self.log = open(var / "serve.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "dashboard", "serve", "--no-demo",
                                      "--port", str(self.port), *args],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 120.0) -> requests.Response:
        end = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.tail()
            try:
                resp = requests.get(self.url + "/healthz", timeout=5)
                if resp.status_code == 200:
                    return resp
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < end, self.tail()
            time.sleep(0.2)

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.var / "redis" / "redis.sock"))

    def tail(self) -> str:
        self.log.flush()
        return (self.var / "serve.log").read_text()[-3000:]

    def stop(self) -> int:
        code = end_process(self.proc, grace=45)
        self.log.close()
        return code


def publish_report(r: redis.Redis, event_id: str, grid_index: int = 0) -> None:
    F.xadd_all(r, [F.reported(event_id, grid_index)])


def test_web001_python_m_dashboard_serves_through_uvicorn_with_the_embedded_pair(tmp_path):
    srv = Served(tmp_path / "var")
    try:
        resp = srv.wait_healthy()
        assert resp.headers.get("server") == "uvicorn"  # never werkzeug's development server
        body = resp.json()
        assert body["redis"] == "ok" and body["database"] == "ok" and len(body["feed"]["consumers"]) == 1
        wall = requests.get(srv.url + f"/wall?token={srv.token}", timeout=30)  # signed in, sent on to its scope
        assert wall.status_code == 200 and wall.headers["server"] == "uvicorn" and "<html" in wall.text.lower()
        assert requests.get(srv.url + "/wall", timeout=30, allow_redirects=False).status_code == 302  # to /signin
        page = Page(srv.port, scope=F.STREET, token=srv.token)
        page.read_until(hello)
        r = srv.redis
        assert [c["name"] for c in r.client_list() if c.get("name") == CLIENT_NAME] == [CLIENT_NAME]
        publish_report(r, "one-command", 1)  # through the stream, the consumer and the push
        page.read_until(lambda ev: "one-command" in {d["id"] for d in page.deltas()}, timeout=60)
        page.close()
        r.close()
    finally:
        code = srv.stop()
    assert code == 0, srv.tail()
    assert not (srv.var / "redis" / "redis.sock").exists()  # the embedded server stopped with it


def test_web002_web_workers_2_share_one_port_one_consumer_and_the_push(tmp_path):
    srv = Served(tmp_path / "var", "--web-workers", "2")
    try:
        srv.wait_healthy()
        pids, consumers = set(), set()
        end = time.monotonic() + 60
        while len(pids) < 2:  # each request on a new connection: the kernel hands them to either worker
            assert time.monotonic() < end, f"only {pids} answered"
            body = requests.get(srv.url + "/healthz", timeout=10).json()
            pids.add(body["web"]["pid"])
            consumers.update(body["feed"]["consumers"])
        assert srv.proc.pid not in pids  # the parent supervises; the workers serve
        assert len(consumers) == 1  # the consumer runs once, in the parent
        r = srv.redis
        end = time.monotonic() + 30
        while len([c for c in r.client_list() if c.get("name") == CLIENT_NAME]) != 2:
            assert time.monotonic() < end, "each worker should hold one push connection"
            time.sleep(0.2)
        pages = [Page(srv.port, scope=F.STREET if i % 2 else F.OTHER_STREET, token=srv.token) for i in range(8)]
        for p in pages:
            p.read_until(hello)
        assert len([c for c in r.client_list() if c.get("name") == CLIENT_NAME]) == 2  # still 2: none per page
        publish_report(r, "both-in", 1)
        publish_report(r, "both-out", 3)
        for i, p in enumerate(pages):  # whichever worker holds it, each page gets its street's event
            want = "both-in" if i % 2 else "both-out"
            p.read_until(lambda ev, want=want, p=p: want in {d["id"] for d in p.deltas()}, timeout=60)
            assert {d["id"] for d in p.deltas() if d["k"] == "event"} == {want}
            p.close()
        r.close()
    finally:
        code = srv.stop()
    assert code == 0, srv.tail()


def _key_in_new_process(var_dir: str, out) -> None:
    out.put(secret_key(Settings.from_env({}, var_dir=var_dir)))


def test_web003_workers_starting_together_get_one_session_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    var = str(tmp_path / "var")
    procs = [ctx.Process(target=_key_in_new_process, args=(var, out)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    path = tmp_path / "var" / "secret_key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [f.name for f in (tmp_path / "var").iterdir()] == ["secret_key"]  # no temporary file left
    assert secret_key(Settings.from_env({}, var_dir=var, secret_key="given")) == "given"


def test_web004_the_demo_in_one_command_runs_the_simulator_through_uvicorn(tmp_path):
    """``python -m dashboard`` as the README gives it (demo mode: seed, simulator), the history
    shortened to none so the test does not wait for a month of reports."""
    var = tmp_path / "var"
    var.mkdir()
    port = free_port(9590)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "WEB_WORKERS", "SECRET_KEY")}
    env.update(VAR_DIR=str(var), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", DEMO_HISTORY_DAYS="0",
               SIM_SPEED="60")
    with open(var / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 300  # the demo district is seeded first
        while True:
            assert proc.poll() is None, (var / "serve.log").read_text()[-3000:]
            try:
                resp = requests.get(url + "/healthz", timeout=5)
                if resp.status_code == 200 and resp.json()["feed"]["consumers"]:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < end, (var / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        assert resp.headers["server"] == "uvicorn"
        # the README's way in: the demo's users, written once to var/demo-users.txt (mode 0600)
        users = var / "demo-users.txt"
        assert oct(users.stat().st_mode & 0o777) == "0o600"
        lines = [line.split("\t") for line in users.read_text(encoding="utf-8").splitlines()]
        assert [line[0] for line in lines] == ["administrator", "district_operator", "street_secretary",
                                               "community_worker", "wall"]
        token = lines[-1][2]
        assert requests.get(url + "/wall", timeout=30, allow_redirects=False).status_code == 302  # to /signin
        page = Page(port, scope="370202", token=token)
        page.read_until(hello)
        page.read_until(lambda ev: bool(page.deltas()), timeout=120)  # the simulator's feed, pushed
        assert all(d["g"].startswith("370202") for d in page.deltas())
        page.close()
        assert (var / "secret_key").stat().st_size > 0  # demo mode: the session key generated once
    finally:
        end_process(proc, grace=60)
    assert proc.returncode == 0, (var / "serve.log").read_text()[-3000:]


def test_web012_clients_behind_a_believed_proxy_are_counted_apart(stack, make_services):
    """The production server's options (``uvicorn_options``): behind a proxy named in
    FORWARDED_ALLOW_IPS, each client is its X-Forwarded-For address to the rate limit; behind one
    that is not named, every client is the proxy."""
    import threading

    import uvicorn

    from dashboard.app import create_app
    from dashboard.web.asgi import make_asgi
    from dashboard.web.run import uvicorn_options

    def served(allow: str, *addresses: str) -> list[int]:
        port = free_port(18300)
        svc = make_services(*stack, api_read_rate_limit="2/minute", host="127.0.0.1", port=port,
                            forwarded_allow_ips=allow)
        server = uvicorn.Server(uvicorn.Config(make_asgi(create_app(svc.settings, svc)),
                                               **uvicorn_options(svc.settings)))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.started
            return [requests.get(f"http://127.0.0.1:{port}/open311/v2/services.json", timeout=10,
                                 headers={"X-Forwarded-For": a}).status_code
                    for a in addresses]
        finally:
            server.should_exit = True
            thread.join(15)

    # this test's requests come from 127.0.0.1: the proxy, believed
    assert served("127.0.0.1", "203.0.113.7", "203.0.113.7", "203.0.113.7", "203.0.113.8") == [200, 200, 429, 200]
    # a proxy not believed: its header is ignored, and both clients are 127.0.0.1 (one limit)
    assert served("10.0.0.11", "198.51.100.1", "198.51.100.2", "198.51.100.3") == [200, 200, 429]
