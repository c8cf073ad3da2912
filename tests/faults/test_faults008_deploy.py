"""The example deployment in deploy/ parses and says what docs/deploy.md says: nginx's config
passes ``nginx -t`` (with stub certificates and paths) and keeps the live push unbuffered with
long timeouts over HTTP/2; the systemd units parse and run the documented commands; the
environment file names only real settings and the sentinels' master."""
from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from dashboard.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOC = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((DEPLOY / "systemd" / name).read_text(encoding="utf-8"))
    return cp


def _blocks(conf: str) -> dict[str, str]:
    """location/server blocks' bodies by their head (one level of nesting is enough here)."""
    out = {}
    for m in re.finditer(r"(location\s+[^{]+|upstream\s+\w+\s*)\{([^{}]*)\}", conf):
        out[" ".join(m.group(1).split())] = m.group(2)
    return out


def test_faults008_systemd_units_and_env_match_the_docs():
    web, consumer = _unit("grid-web.service"), _unit("grid-consumer.service")
    for unit in (web, consumer):
        assert {"Unit", "Service", "Install"} <= set(unit.sections())
        assert unit["Service"]["EnvironmentFile"] == "/etc/grid/grid.env"
        assert unit["Service"]["Restart"] == "always" and unit["Service"]["KillSignal"] == "SIGTERM"
        assert unit["Install"]["WantedBy"] == "multi-user.target"
    web_cmd = shlex.split(web["Service"]["ExecStart"])
    consumer_cmd = shlex.split(consumer["Service"]["ExecStart"])
    assert web_cmd[0].endswith("/uvicorn") and web_cmd[1] == "dashboard.asgi:app"
    assert consumer_cmd[0].endswith("/python") and consumer_cmd[1:] == ["-m", "dashboard", "consume"]
    # the commands the docs tell an operator to run are the units' commands
    assert " ".join(["uvicorn"] + web_cmd[1:]) in DOC
    assert "python -m dashboard consume" in DOC
    # the web port is the one nginx's upstream points at
    port = web_cmd[web_cmd.index("--port") + 1]
    upstream = _blocks((DEPLOY / "nginx" / "grid.conf").read_text())["upstream grid_web"]
    assert re.findall(r"server\s+[\d.]+:(\d+)", upstream) and \
        set(re.findall(r"server\s+[\d.]+:(\d+)", upstream)) == {port}

    env = {}
    for line in (DEPLOY / "grid.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = v
    assert set(env) <= {s.name for s in SETTINGS}, set(env) - {s.name for s in SETTINGS}
    from dashboard.settings import Settings

    settings = Settings.from_env(env)  # every value parses
    # nginx runs on a machine of its own: the web servers must believe its X-Forwarded-For
    assert settings.forwarded_allow_ips not in ("127.0.0.1,::1", "127.0.0.1", "*")
    sentinel = (DEPLOY / "redis" / "sentinel.conf").read_text()
    monitor = re.search(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", sentinel, re.M)
    assert monitor and monitor.group(1) == settings.redis_sentinel_master
    assert len(settings.redis_sentinels.split(",")) == 3 and int(monitor.group(4)) == 2  # a majority of 3
    assert settings.redis_wait_replicas >= 1  # the documented layout bounds fail-over loss with WAIT


def test_faults009_nginx_config_keeps_the_live_push_unbuffered():
    conf = (DEPLOY / "nginx" / "grid.conf").read_text()
    blocks = _blocks(conf)
    live = blocks["location = /api/v1/live"]
    assert re.search(r"proxy_buffering\s+off;", live) and re.search(r"gzip\s+off;", live)
    assert re.search(r"proxy_next_upstream\s+off;", live)
    for key in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = int(re.search(key + r"\s+(\d+)s;", live).group(1))
        assert seconds >= 600  # far above the 2 s heartbeat: nginx never cuts an idle stream
    assert re.search(r"listen\s+443\s+ssl\s+http2;", conf)
    assert re.search(r"proxy_http_version\s+1\.1;", conf)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed (apt-get install nginx; .ci/run does)")
def test_faults010_nginx_t_accepts_the_config(tmp_path):
    key, cert = tmp_path / "privkey.pem", tmp_path / "fullchain.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=grid.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    site = (DEPLOY / "nginx" / "grid.conf").read_text()
    site = site.replace("/etc/grid/tls/", f"{tmp_path}/").replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "grid.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
        + "".join(f"    {d}_temp_path {tmp_path}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"    access_log {tmp_path}/access.log;\n    include {tmp_path}/grid.conf;\n}}\n")
    out = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                          "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr and "test is successful" in out.stderr
