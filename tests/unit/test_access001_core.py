"""Access foundations without a web server: hashing, the scope rule, users, tokens, lock-out, audit."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from dashboard.access import audit, passwords
from dashboard.access.roles import STREET_SECRETARY
from dashboard.access.scope import INVALID, OUTSIDE, UNKNOWN, ScopeRefused, effective_scope
from dashboard.access.signin import LOCKED, UNKNOWN as UNKNOWN_USER, WRONG, SignInFailed, authenticate
from dashboard.access.users import (
    AccessError, Principal, add_token, add_user, load_principal, now, revoke_token, set_disabled, set_password,
    token_principal,
)
from dashboard.settings import Settings
from dashboard.store.schema import access_audit, access_user
from tests.unit import feed_support as F

PW = "correct horse 42"
SECRET = "k" * 32


@pytest.fixture
def store(engine):
    F.seed_regions(engine)
    return engine


def _secretary(engine, name="secretary"):
    add_user(engine, name, PW, STREET_SECRETARY, F.STREET, actor="test")


def test_access001_argon2id_hashes_verify_and_refuse():
    h = passwords.hash_password(PW)
    assert h.startswith("$argon2id$") and PW not in h
    assert passwords.verify_password(h, PW)
    assert not passwords.verify_password(h, PW + "x")
    assert not passwords.verify_password("not a hash", PW)
    assert passwords.hash_password(PW) != h  # salted
    assert not passwords.needs_rehash(h)
    with pytest.raises(ValueError):
        passwords.hash_password("short")


CODES = [F.DISTRICT, F.STREET, F.OTHER_STREET, F.COMMUNITY, *F.GRIDS, F.OTHER_GRID]
EXISTS = set(CODES).__contains__


@given(own=st.sampled_from(["", *CODES]),
       requested=st.one_of(st.none(), st.sampled_from(CODES), st.text(max_size=30),
                           st.from_regex(r"37020[0-9]{1,19}", fullmatch=True)))
def test_access002_effective_scope_is_never_wider_than_the_principals(own, requested):
    p = Principal("user", 1, "u", STREET_SECRETARY, own)
    try:
        got = effective_scope(p, requested, EXISTS)
    except ScopeRefused as exc:
        assert exc.reason in (INVALID, OUTSIDE, UNKNOWN) and exc.allowed == own
        # refused only when it had to be: not a code, outside, or no such region
        assert not (requested and requested.startswith(own) and EXISTS(requested))
        return
    assert got.startswith(own)                      # never wider
    assert got == (requested or own)                # what was asked, or its own
    assert got == own or EXISTS(got)                # a real region


def test_access003_effective_scope_refusals_name_the_reason():
    p = Principal("user", 1, "secretary", STREET_SECRETARY, F.STREET)
    assert effective_scope(p, None, EXISTS) == F.STREET
    assert effective_scope(p, F.COMMUNITY, EXISTS) == F.COMMUNITY
    for requested, reason in ((F.DISTRICT, OUTSIDE), (F.OTHER_STREET, OUTSIDE), (F.OTHER_GRID, OUTSIDE),
                              (F.STREET + "999", UNKNOWN), ("3702'--", INVALID), ("", None)):
        if reason is None:
            assert effective_scope(p, requested, EXISTS) == F.STREET
            continue
        with pytest.raises(ScopeRefused) as exc:
            effective_scope(p, requested, EXISTS)
        assert exc.value.reason == reason


def test_access004_users_need_a_real_scope_of_their_roles_level(store):
    _secretary(store)
    with pytest.raises(AccessError, match="exists already"):
        _secretary(store)
    with pytest.raises(AccessError, match="needs a street code; 370202 is a district"):
        add_user(store, "s2", PW, STREET_SECRETARY, F.DISTRICT, actor="test")
    with pytest.raises(AccessError, match="unknown scope '370202099'"):
        add_user(store, "s3", PW, STREET_SECRETARY, "370202099", actor="test")
    with pytest.raises(AccessError, match="unknown role"):
        add_user(store, "s4", PW, "wall", F.STREET, actor="test")  # a wall is a token, not a user
    with pytest.raises(AccessError, match="needs a scope"):
        add_user(store, "s5", PW, "district_operator", "", actor="test")
    with pytest.raises(AccessError, match="not valid"):
        add_user(store, "bad name", PW, "administrator", "", actor="test")
    add_user(store, "root", PW, "administrator", "", actor="test")
    assert [r["details"]["user"] for r in audit.query(store, action=audit.USER_ADDED)] == ["root", "secretary"]


def _settings(**kw):
    return Settings.from_env({}, **kw)


def test_access005_lock_out_after_repeated_failures_and_its_end(store):
    _secretary(store)
    s = _settings(access_max_failures=3, access_lock_minutes=15)
    for _ in range(3):
        with pytest.raises(SignInFailed) as exc:
            authenticate(store, s, SECRET, "secretary", "wrong password", ip="10.0.0.9")
        assert exc.value.reason == WRONG
    # locked: even the right password is refused, with the same exception
    with pytest.raises(SignInFailed) as exc:
        authenticate(store, s, SECRET, "secretary", PW, ip="10.0.0.9")
    assert exc.value.reason == LOCKED
    with store.begin() as conn:  # the lock's time has passed
        conn.execute(sa.update(access_user).values(locked_until=now() - timedelta(seconds=1)))
    p = authenticate(store, s, SECRET, "secretary", PW, ip="10.0.0.9")
    assert (p.name, p.role, p.scope) == ("secretary", STREET_SECRETARY, F.STREET)
    rows = audit.query(store, actor="secretary")
    assert [r["action"] for r in rows[:5]] == [audit.SIGNIN_OK, audit.SIGNIN_FAILED] + [audit.SIGNIN_FAILED] * 3
    assert rows[1]["details"]["reason"] == LOCKED and rows[2]["details"].get("locked_until")
    assert all(r["ip"] == "10.0.0.9" for r in rows[:5])
    with store.connect() as conn:
        assert conn.execute(sa.select(access_user.c.failed_count, access_user.c.locked_until)).one() == (0, None)


def test_access006_an_unknown_name_costs_a_hash_like_a_wrong_password(store, monkeypatch):
    _secretary(store)
    calls = []
    real = passwords.verify_password

    def counting(stored, password):
        calls.append(stored)
        return real(stored, password)
    monkeypatch.setattr(passwords, "verify_password", counting)
    monkeypatch.setattr("dashboard.access.signin.verify_password", counting)
    s = _settings()
    reasons = []
    for name in ("nobody", "secretary"):
        with pytest.raises(SignInFailed) as exc:
            authenticate(store, s, SECRET, name, "wrong password")
        reasons.append(exc.value.reason)
    assert reasons == [UNKNOWN_USER, WRONG]
    assert len(calls) == 2 and all(c.startswith("$argon2id$") for c in calls)  # one Argon2 check each


def test_access007_disabled_users_and_changed_passwords_end_sessions(store):
    _secretary(store)
    s = _settings()
    p = authenticate(store, s, SECRET, "secretary", PW)
    assert load_principal(store, p.get_id(), SECRET) == p
    assert load_principal(store, p.get_id(), "another key") is None  # new key: every session ends
    set_password(store, "secretary", "a new password 7", actor="test")
    assert load_principal(store, p.get_id(), SECRET) is None
    p2 = authenticate(store, s, SECRET, "secretary", "a new password 7")
    set_disabled(store, "secretary", True, actor="test")
    assert load_principal(store, p2.get_id(), SECRET) is None
    with pytest.raises(SignInFailed):
        authenticate(store, s, SECRET, "secretary", "a new password 7")
    for bad in ("", "u:", "u:x:y", "x:1:", "t:999:"):
        assert load_principal(store, bad, SECRET) is None
    assert [r["action"] for r in audit.query(store, actor="test")] == [
        audit.USER_DISABLED, audit.PASSWORD_CHANGED, audit.USER_ADDED]


def test_access008_wall_tokens_are_kept_hashed_and_end_when_revoked(store):
    tid, token = add_token(store, "hall-1", F.STREET, actor="admin")
    with store.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM access_token")).scalar_one()
    assert token not in stored and len(token) >= 40
    p = token_principal(store, token)
    assert (p.kind, p.role, p.scope, p.actor) == ("token", "wall", F.STREET, f"token:{tid}")
    assert load_principal(store, p.get_id(), SECRET) == p
    assert token_principal(store, token + "x") is None and token_principal(store, None) is None
    revoke_token(store, tid, actor="admin")
    assert token_principal(store, token) is None
    assert load_principal(store, p.get_id(), SECRET) is None
    with pytest.raises(AccessError, match="revoked already"):
        revoke_token(store, tid, actor="admin")
    with pytest.raises(AccessError, match="no wall token 99"):
        revoke_token(store, 99, actor="admin")
    with pytest.raises(AccessError, match="unknown scope"):
        add_token(store, "hall-2", "370299", actor="admin")
    assert [r["action"] for r in audit.query(store, actor="admin")] == [audit.TOKEN_REVOKED, audit.TOKEN_CREATED]


def test_access009_the_audit_log_is_append_only_in_the_database(store):
    audit.record(store, audit.SIGNIN_OK, actor="secretary", ip="10.1.1.1", scope=F.STREET)
    for statement in ("UPDATE access_audit SET actor = 'someone else'", "DELETE FROM access_audit"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with store.begin() as conn:
                conn.execute(sa.text(statement))
    with store.connect() as conn:
        assert conn.execute(sa.select(access_audit.c.actor, access_audit.c.ip)).all() == [("secretary", "10.1.1.1")]


def test_access010_scope_refusals_are_audited_with_what_was_asked(store):
    p = Principal("user", 1, "secretary", STREET_SECRETARY, F.STREET)
    with pytest.raises(ScopeRefused) as exc:
        effective_scope(p, F.OTHER_STREET, EXISTS)
    audit.scope_refused(store, p, exc.value, ip="10.0.0.2", where="/wall")
    (row,) = audit.query(store, action=audit.SCOPE_REFUSED)
    assert (row["actor"], row["ip"]) == ("secretary", "10.0.0.2")
    assert row["details"] == {"requested": F.OTHER_STREET, "allowed": F.STREET, "reason": OUTSIDE, "where": "/wall"}
