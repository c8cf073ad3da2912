"""Signing in through the page in headless Chromium, with ACCESS_REQUIRED on: the sign-in page in
Chinese (and English), a wrong password, a street secretary landing on their street's wall, sign-out;
and the demo's first start writing var/demo-users.txt, whose street secretary signs in the same way."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from dashboard import synthetic_city as sc
from dashboard.access.users import add_user
from dashboard.app import create_app
from tests.integration.wallkit import AppServer, Browsers, fill_sign_in, free_port, severe_logs, wait_for
from tests.processes import end_process

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
STREET = "370202002"
PASSWORD = "street secretary 1"


@pytest.fixture
def server(stack, make_services):
    svc = make_services(*stack, access_required=True)
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 60, open_share=0.8)
    add_user(svc.engine, "secretary", PASSWORD, "street_secretary", STREET, actor="test")
    with AppServer(create_app(svc.settings, svc)) as srv:
        yield srv


@pytest.fixture
def browser():
    opened = Browsers(1440, 900)
    yield opened
    opened.close()


sign_in = fill_sign_in


def query(driver) -> dict:
    return parse_qs(urlsplit(driver.current_url).query)


def test_access040_a_street_secretary_signs_in_through_the_page_and_gets_their_street(server, browser):
    d = browser()
    d.get(server.url + "/wall")
    wait_for(d, "document.querySelector('#username') !== null")
    assert urlsplit(d.current_url).path == "/signin" and query(d)["next"] == ["/wall"]
    assert d.execute_script("return document.documentElement.lang") == "zh-CN"
    assert d.find_element(By.CSS_SELECTOR, "h2").text == "登录"
    sign_in(d, "secretary", "not the password")
    wait_for(d, "document.querySelector('.message') !== null")
    assert d.find_element(By.CSS_SELECTOR, ".message").text == "用户名或密码错误，或账户已暂时锁定。"
    # the refused attempt's 401 is the browser's only complaint so far
    assert [m for m in severe_logs(d) if "/signin - Failed to load resource" not in m or "401" not in m] == []
    sign_in(d, "secretary", PASSWORD)
    wait_for(d, "!!window.wallReady", timeout=60)
    assert urlsplit(d.current_url).path == "/wall" and query(d)["scope"] == [STREET]
    assert severe_logs(d) == []  # the signed-in wall: no console error
    me = d.execute_script("return fetch('/api/v1/me').then(r => r.json())")
    assert (me["name"], me["scope"], me["effective_scope"]) == ("secretary", STREET, STREET)
    cookie = d.get_cookie("session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["secure"] is False
    assert d.execute_script("return document.cookie").find("session=") == -1  # HttpOnly: scripts cannot read it
    # another street is refused, with a page saying so
    d.get(server.url + "/wall?scope=370202001")
    assert d.find_element(By.CSS_SELECTOR, ".message").text == "无权查看该范围：370202001"
    d.get(server.url + "/signout")
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(d, "document.querySelector('.note') !== null")
    assert d.find_element(By.CSS_SELECTOR, ".note").text == "已退出登录。"
    assert d.execute_script("return fetch('/api/v1/me').then(r => r.status)") == 401
    # nothing but the two refusals asked for above (the other street, /api/v1/me signed out)
    assert [m.split(" - ")[0] for m in severe_logs(d)] == [server.url + "/wall?scope=370202001",
                                                           server.url + "/api/v1/me"]


def test_access041_the_sign_in_page_in_english_at_phone_width(server, browser):
    d = browser(360, 740)
    d.get(server.url + "/signin?lang=en")
    assert d.execute_script("return document.documentElement.lang") == "en"
    assert d.find_element(By.CSS_SELECTOR, "label[for=username]").text == "User name"
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    sign_in(d, "secretary", PASSWORD)
    wait_for(d, "!!window.wallReady", timeout=60)
    assert query(d)["scope"] == [STREET] and query(d)["lang"] == ["en"]
    assert severe_logs(d) == []


def test_access042_the_demos_first_start_writes_its_users_and_the_secretary_signs_in(tmp_path, browser):
    var = tmp_path / "var"
    port = free_port(9840)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "WEB_WORKERS")}
    env.update(VAR_DIR=str(var), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", DEMO="1", DEMO_HISTORY_DAYS="0",
               SIM_RATE="0.01", ACCESS_REQUIRED="1")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        users = var / "demo-users.txt"
        assert oct(users.stat().st_mode & 0o777) == "0o600"
        lines = [line.split("\t") for line in users.read_text(encoding="utf-8").splitlines()]
        assert [line[0] for line in lines] == ["administrator", "district_operator", "street_secretary",
                                               "community_worker", "wall"]
        _, username, password, scope = lines[2]
        assert scope == "370202001"
        printed = (tmp_path / "serve.log").read_text()
        assert password in printed  # shown once on the first start
        d = browser()
        d.get(f"http://127.0.0.1:{port}/")
        wait_for(d, "document.querySelector('#username') !== null")
        sign_in(d, username, password)
        wait_for(d, "!!window.wallReady", timeout=120)
        assert query(d)["scope"] == ["370202001"]
        assert severe_logs(d) == []
    finally:
        end_process(proc)
        log.close()
