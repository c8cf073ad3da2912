"""Browser plumbing for the wall's tests and benches: the real app on a thread, headless Chromium."""
from __future__ import annotations

import json
import socket
import threading
import time
import weakref

CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--hide-scrollbars=false", "--force-device-scale-factor=1")


def free_port(start: int = 8071) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


# --- signing in (ACCESS_REQUIRED is on by default) ------------------------------------------------
# A served app whose settings require access gets a test administrator, signed in through the real
# /signin form (CSRF token and all); every browser chrome() opens afterwards carries that session's
# cookie, so the wall's tests load the pages they always did, as a signed-in administrator (every
# scope, like the anonymous viewer before). What each role may see is tests/unit/test_access1NN_*.
TEST_USER = "wall-tester"
TEST_PASSWORD = "wall tester password 1"
CSRF_RE = r'name="csrf_token" type="hidden" value="([^"]+)"'
SIGNED_IN: list[tuple[str, str]] = []  # (origin, session cookie) of the running servers signed in to


def ensure_user(engine, username: str = TEST_USER, password: str = TEST_PASSWORD, role: str = "administrator",
                scope: str = "") -> None:
    """The user, made unless it exists already (one database may serve several app servers)."""
    from dashboard.access.users import add_user, list_users

    if username not in {u["username"] for u in list_users(engine)}:
        add_user(engine, username, password, role, scope, actor="test")


def session_cookie(base_url: str, username: str = TEST_USER, password: str = TEST_PASSWORD) -> str:
    """Sign in through the /signin form over HTTP; the session cookie's value."""
    import re

    import requests

    with requests.Session() as s:
        page = s.get(base_url + "/signin", timeout=60).text
        token = re.search(CSRF_RE, page)
        assert token, page[:300]
        resp = s.post(base_url + "/signin", data={"csrf_token": token.group(1), "username": username,
                                                  "password": password, "next": ""},
                      allow_redirects=False, timeout=60)
        assert resp.status_code == 302, (resp.status_code, resp.text[:300])
        return s.cookies["session"]


def sign_in_driver(driver, base_url: str, cookie: str) -> None:
    """Give the browser the session (DevTools sets it before any page of the origin is open)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCookie", {"name": "session", "value": cookie, "url": base_url,
                                                 "httpOnly": True, "sameSite": "Lax"})


DRIVERS: "weakref.WeakSet" = weakref.WeakSet()  # browsers chrome() made: a server started after one signs it in too


def _signed_in(base_url: str, engine) -> None:
    ensure_user(engine)
    cookie = session_cookie(base_url)
    SIGNED_IN.append((base_url, cookie))
    for driver in list(DRIVERS):
        process = getattr(getattr(driver, "service", None), "process", None)
        if process is not None and process.poll() is not None:  # quit: its chromedriver is gone
            DRIVERS.discard(driver)
            continue
        try:
            sign_in_driver(driver, base_url, cookie)
        except Exception:  # noqa: BLE001 - a browser already quit
            DRIVERS.discard(driver)


def _signed_out(base_url: str) -> None:
    SIGNED_IN[:] = [(u, c) for u, c in SIGNED_IN if u != base_url]


class AppServer:
    """create_app(...) served as in production, by uvicorn through the ASGI front (dashboard.web.asgi:
    the live push on the event loop, the rest through the WSGI thread pool), on a daemon thread.
    A bare Dash app (no ``services``: the benches' floors) is served through the same thread pool.
    ``sign_in``: a test administrator signs in once the server is up, and the browsers chrome()
    made or makes carry its session (the wall's tests, which load pages as every scope's viewer)."""

    def __init__(self, app, port: int | None = None, nodelay: bool = True, sign_in: bool = False):
        self.port = port or free_port()
        self.asgi = asgi_for(app)
        self.server = UvicornThread(self.asgi, self.port)  # asyncio sets TCP_NODELAY on every connection
        self.services = getattr(app, "services", None)
        self.sign_in = sign_in and self.services is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.server.start()
        if self.sign_in:
            _signed_in(self.url, self.services.engine)
        return self

    def __exit__(self, *exc):
        _signed_out(self.url)
        self.server.stop()


def asgi_for(app, **kw):
    if getattr(app, "services", None) is not None:
        from dashboard.web.asgi import make_asgi

        return make_asgi(app, **kw)
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(app.server, workers=16)


class UvicornThread:
    """uvicorn.Server on a daemon thread (it installs no signal handlers off the main thread)."""

    def __init__(self, asgi_app, port: int, host: str = "127.0.0.1"):
        import uvicorn

        self.config = uvicorn.Config(asgi_app, host=host, port=port, lifespan="on", log_config=None,
                                     access_log=False, timeout_graceful_shutdown=1, backlog=4096)
        self.uvicorn = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)

    def start(self, timeout: float = 30.0) -> "UvicornThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.uvicorn.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            # its lifespan shutdown (which closes the push hub and its Redis reader) has not run: the
            # reader would stay on the session's Redis for the rest of the run, as one did for 876 s in
            # CI. Said in the warnings summary, naming the test, so the next such run shows which.
            import warnings

            warnings.warn(f"uvicorn on port {self.config.port} still running 15 s after its stop", stacklevel=2)


def chrome(width: int = 1920, height: int = 1080, performance_log: bool = True):
    """performance_log: DevTools network/page events kept for get_log("performance") (network_bodies);
    the benches turn it off, since recording every event costs the browser CPU during the load."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if performance_log else {})})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    # --window-size sets the outer window; make the viewport exactly width x height.
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:
        driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))
    if SIGNED_IN:  # cookies are per host, not per port: the server signed in to last
        sign_in_driver(driver, *SIGNED_IN[-1])
    DRIVERS.add(driver)
    return driver


class Browsers:
    """Chromium windows a test opens, all closed at its end (the browser fixtures' one body)."""

    def __init__(self, width: int = 1440, height: int = 900):
        self.size, self.drivers = (width, height), []

    def __call__(self, width: int | None = None, height: int | None = None):
        d = chrome(width or self.size[0], height or self.size[1], performance_log=False)
        self.drivers.append(d)
        return d

    def close(self) -> None:
        for d in self.drivers:
            d.quit()


def fill_sign_in(driver, username: str, password: str) -> None:
    """Type into the /signin form the driver shows, and send it."""
    from selenium.webdriver.common.by import By

    wait_for(driver, "document.querySelector('#username') !== null")
    driver.find_element(By.ID, "username").clear()
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def sign_in_page(driver, base_url: str, username: str, password: str, next_path: str = "") -> None:
    """Sign in through the real /signin page (CSRF token and all), then go to ``next_path``."""
    from urllib.parse import quote

    driver.get(f"{base_url}/signin" + (f"?next={quote(next_path)}" if next_path else ""))
    fill_sign_in(driver, username, password)


def _cpu_ticks(root: int) -> int:
    """utime + stime (clock ticks) of root and all its descendants: the browser's processes."""
    import os

    parent, ticks = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(pid)] = int(fields[1])
        ticks[int(pid)] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, t in ticks.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += t
    return total


def browser_idle(driver, quiet_s: float = 0.2, busy_share: float = 0.1, timeout: float = 5.0) -> float:
    """Wait until the browser's processes have been (nearly) idle for quiet_s; returns the seconds waited.

    A freshly launched Chromium keeps one core busy for ~0.7 s after chromedriver returns (its
    first renderer still starting up). A load timed from a navigation made in that window measures
    the browser's start-up as much as the page, so the benches start timing on an idle browser.
    """
    import os

    root = driver.service.process.pid
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    step = 0.05
    quiet = 0.0
    last = _cpu_ticks(root)
    while time.time() - t0 < timeout and quiet < quiet_s:
        time.sleep(step)
        now = _cpu_ticks(root)
        # at most busy_share of a core over the step, or one clock tick (the counters' resolution)
        quiet = quiet + step if (now - last) / hz <= max(busy_share * step, 1.0 / hz) else 0.0
        last = now
    return time.time() - t0


def wait_for(driver, script: str, timeout: float = 15.0, interval: float = 0.1):
    """Poll a JS expression until it is truthy; returns its value or raises with the last one."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {script!r} (last value {value!r})")


def severe_logs(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def network_bodies(driver, url_part: str) -> list[str]:
    """Response bodies of requests whose URL contains url_part (Chrome DevTools, via the performance log)."""
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.responseReceived":
            continue
        resp = msg["params"]["response"]
        if url_part in resp["url"]:
            try:
                body = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": msg["params"]["requestId"]})
                out.append(body.get("body", ""))
            except Exception:  # noqa: BLE001 - a body evicted from the buffer is simply not checked
                continue
    return out


SERVE_SNIPPET = """
import sys
import uvicorn
from dashboard.app import create_app
from dashboard.settings import Settings
from dashboard.web.asgi import make_asgi
s = Settings.from_env({}, database_url=sys.argv[1], redis_url=sys.argv[2], var_dir=sys.argv[4], demo=False)
app = make_asgi(create_app(s))
print('ready', flush=True)
uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[3]), log_config=None, access_log=False, timeout_graceful_shutdown=1)
"""


class AppProcess:
    """The app in its own process: killing it cuts every open connection, like a server going away."""

    def __init__(self, database_url: str, redis_url: str, var_dir: str, port: int | None = None):
        self.args = (database_url, redis_url, var_dir)
        self.port = port or free_port(8120)
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, sign_in: bool = True) -> "AppProcess":
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        db, rd, var = self.args
        self.proc = subprocess.Popen([sys.executable, "-c", SERVE_SNIPPET, db, rd, str(self.port), var],
                                     cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.stop()
            raise RuntimeError("app process did not start")
        deadline = time.time() + timeout
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    if sign_in:  # ACCESS_REQUIRED is on in the process: a test administrator signs in
                        from dashboard.store.engine import make_engine

                        engine = make_engine(db)
                        try:
                            _signed_in(self.url, engine)
                        finally:
                            engine.dispose()
                    return self
            time.sleep(0.1)
        raise RuntimeError("app process does not listen")

    def stop(self) -> None:
        _signed_out(self.url)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
