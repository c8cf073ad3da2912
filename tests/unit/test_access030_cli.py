"""``python -m dashboard users …`` and ``python -m dashboard audit`` as real processes, the demo
users and their file, and the SECRET_KEY refusal outside demo mode."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.access import audit
from dashboard.access.demo import ensure_demo_users
from dashboard.access.signin import authenticate
from dashboard.access.users import list_users, token_principal
from tests.unit import feed_support as F

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(engine, tmp_path):
    """Runs ``python -m dashboard ARGS`` on the fixture's database (with the feed district's regions)."""
    F.seed_regions(engine)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(DATABASE_URL=engine.url.render_as_string(hide_password=False), VAR_DIR=str(tmp_path / "var"),
               PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")

    def run(*args, stdin: str | None = None):
        return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)
    return run


def test_access030_users_add_list_disable_enable_passwd(cli, engine):
    out = cli("users", "add", "li.hua", "--role", "street_secretary", "--scope", F.STREET)
    assert out.returncode == 0, out.stderr
    generated = out.stdout.split("password: ")[1].strip()
    assert len(generated) >= 16
    s = _settings()
    assert authenticate(engine, s, "k", "li.hua", generated).scope == F.STREET
    out = cli("users", "add", "wang", "--role", "community_worker", "--scope", F.COMMUNITY, "--password-stdin",
              stdin="a typed password 1\n")
    assert out.returncode == 0 and "password:" not in out.stdout
    assert authenticate(engine, s, "k", "wang", "a typed password 1").role == "community_worker"
    # refusals are one line naming the problem, exit 2
    for args, text in ((("users", "add", "li.hua", "--role", "administrator"), "user 'li.hua' exists already"),
                       (("users", "add", "zhao", "--role", "street_secretary", "--scope", "370202099"),
                        "unknown scope '370202099'"),
                       (("users", "add", "zhao", "--role", "street_secretary", "--scope", F.COMMUNITY),
                        "needs a street code"),
                       (("users", "disable", "nobody"), "no user 'nobody'")):
        out = cli(*args)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error: ") and text in out.stderr
    assert cli("users", "disable", "wang").returncode == 0
    listed = cli("users", "list").stdout.splitlines()
    assert listed[0].split("\t")[:4] == ["username", "role", "scope", "state"]
    assert [row.split("\t")[:4] for row in listed[1:]] == [["li.hua", "street_secretary", F.STREET, "enabled"],
                                                           ["wang", "community_worker", F.COMMUNITY, "disabled"]]
    assert cli("users", "enable", "wang").returncode == 0
    out = cli("users", "passwd", "wang", "--password-stdin", stdin="the next password\n")
    assert out.returncode == 0
    assert authenticate(engine, s, "k", "wang", "the next password").name == "wang"
    actions = [(r["action"], r["actor"].startswith("cli")) for r in audit.query(engine) if r["action"] != "signin_ok"]
    assert actions == [("password_changed", True), ("user_enabled", True), ("user_disabled", True),
                       ("user_added", True), ("user_added", True)]


def test_access031_wall_tokens_made_listed_and_revoked(cli, engine):
    out = cli("users", "token", "--scope", F.STREET, "--label", "hall-1")
    assert out.returncode == 0, out.stderr
    token = out.stdout.splitlines()[1]
    assert token_principal(engine, token).scope == F.STREET
    rows = cli("users", "tokens").stdout.splitlines()
    assert rows[1].split("\t")[:3] == ["1", "hall-1", F.STREET] and rows[1].endswith("\t-")
    assert cli("users", "revoke", "1").returncode == 0
    assert token_principal(engine, token) is None
    assert cli("users", "tokens").stdout.splitlines()[1].split("\t")[-1] != "-"
    out = cli("users", "revoke", "1")
    assert out.returncode == 2 and "revoked already" in out.stderr
    assert token not in cli("audit").stdout  # the log names the token by id, never by itself


def test_access032_a_user_file_with_a_duplicate_or_an_unknown_scope_is_refused_naming_it(cli, engine, tmp_path):
    bad = tmp_path / "users.csv"
    bad.write_text("username,role,scope\n"
                   f"zhang,street_secretary,{F.STREET}\n"
                   f"liu,community_worker,370202001099\n"
                   f"zhang,community_worker,{F.COMMUNITY}\n", encoding="utf-8")
    out = cli("users", "import", str(bad))
    assert out.returncode == 2
    assert f"{bad}:4: duplicate user name 'zhang' (also line 2)" in out.stderr
    assert f"{bad}:3: unknown scope '370202001099'" in out.stderr
    assert list_users(engine) == []  # nothing imported
    good = tmp_path / "good.csv"
    good.write_text(f"username,role,scope\nzhang,street_secretary,{F.STREET}\nliu,community_worker,{F.COMMUNITY}\n",
                    encoding="utf-8")
    out = cli("users", "import", str(good))
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert [(r[0], r[1], r[3]) for r in lines] == [("street_secretary", "zhang", F.STREET),
                                                   ("community_worker", "liu", F.COMMUNITY)]
    assert authenticate(engine, _settings(), "k", "liu", lines[1][2]).scope == F.COMMUNITY
    again = cli("users", "import", str(good))
    assert again.returncode == 2 and "user 'zhang' exists already" in again.stderr


def test_access033_audit_command_filters_and_prints_json(cli, engine):
    audit.record(engine, audit.SIGNIN_FAILED, actor="nobody", ip="10.0.0.1", reason="unknown_user")
    audit.record(engine, audit.SCOPE_REFUSED, actor="secretary", ip="10.0.0.2", requested=F.OTHER_STREET)
    out = cli("audit", "--action", "scope_refused", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (row["actor"], row["ip"], row["details"]) == ("secretary", "10.0.0.2", {"requested": F.OTHER_STREET})
    lines = cli("audit").stdout.splitlines()
    assert lines[0] == "at\tactor\tip\taction\tdetails" and [line.split("\t")[1] for line in lines[1:]] == [
        "secretary", "nobody"]
    assert cli("audit", "--since", "2999-01-01").stdout.splitlines() == ["at\tactor\tip\taction\tdetails"]
    bad = cli("audit", "--since", "yesterday")
    assert bad.returncode == 2 and "not an ISO date" in bad.stderr


def test_access034_demo_users_one_per_role_in_a_0600_file(stack, make_services):
    services = make_services(*stack)
    F.seed_regions(services.engine)
    printed = []
    path = ensure_demo_users(services, out=printed.append)
    assert path == services.settings.var_path / "demo-users.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(line) == 4 for line in lines)
    assert [(role, scope) for role, _, _, scope in lines] == [
        ("administrator", ""), ("district_operator", F.DISTRICT), ("street_secretary", F.STREET),
        ("community_worker", F.COMMUNITY), ("wall", F.DISTRICT)]
    s = _settings()
    for role, username, password, scope in lines[:4]:
        assert authenticate(services.engine, s, "k", username, password).role == role
        assert any(password in p for p in printed)  # printed once ...
    assert token_principal(services.engine, lines[4][2]).scope == F.DISTRICT
    again = []
    assert ensure_demo_users(services, out=again.append) is None
    assert not any(line[2] in "\n".join(again) for line in lines)  # ... and never again
    assert str(path) in "\n".join(again)
    assert path.read_text(encoding="utf-8").splitlines() == ["\t".join(line) for line in lines]


def test_access035_outside_demo_mode_start_up_refuses_without_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEMO")}
    env.update(VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "dashboard", "--no-demo", "--port", "9871"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: SECRET_KEY is not set. Outside demo mode")
    assert not (tmp_path / "var" / "secret_key").exists()  # nothing generated in its place
    for module in ("dashboard.wsgi", "dashboard.asgi"):
        code = f"import {module} as m; getattr(m, 'app')"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DEMO": "false"},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and "SECRET_KEY is not set" in out.stderr, module


def _settings():
    from dashboard.settings import Settings

    return Settings.from_env({})
