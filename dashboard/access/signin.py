"""Password sign-in with lock-out.

Every failure (unknown name, wrong password, disabled or locked account) gives the caller the same
``SignInFailed`` and the user the same message; the audit log keeps the real reason. A name that
does not exist is checked against a dummy hash, and a locked account's password is still hashed, so
the time taken does not tell them apart either.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from ..store.schema import access_user
from . import audit
from .passwords import burn_time, hash_password, needs_rehash, verify_password
from .users import Principal, get_user, now, user_principal

UNKNOWN = "unknown_user"
WRONG = "wrong_password"
DISABLED = "disabled"
LOCKED = "locked"


class SignInFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def authenticate(engine, settings, secret: str, username: str, password: str, *, ip: str = "") -> Principal:
    username = (username or "").strip()[:64]
    password = password or ""
    with engine.connect() as conn:
        row = get_user(conn, username) if username else None
    t = now()
    if row is None:
        burn_time(password)
        return _fail(engine, UNKNOWN, username, ip)
    if row["locked_until"] is not None and row["locked_until"] > t:
        burn_time(password)  # a locked account is not an oracle for its password
        return _fail(engine, LOCKED, username, ip, until=row["locked_until"].isoformat())
    ok = verify_password(row["password_hash"], password)
    if ok and row["disabled"]:
        return _fail(engine, DISABLED, username, ip)
    if not ok:
        return _wrong(engine, settings, row, ip)
    values = {"failed_count": 0, "locked_until": None}
    if needs_rehash(row["password_hash"]):  # parameters raised since: upgrade on the way in
        values["password_hash"] = hash_password(password)
    with engine.begin() as conn:
        conn.execute(update(access_user).where(access_user.c.id == row["id"]).values(**values))
        audit.record(conn, audit.SIGNIN_OK, actor=username, ip=ip, role=row["role"], scope=row["scope"])
    return user_principal({**row, **values} if "password_hash" in values else row, secret)


def _wrong(engine, settings, row, ip: str):
    """Count the failure in the database (atomically: parallel attempts all count) and lock the
    account at ACCESS_MAX_FAILURES in a row."""
    with engine.begin() as conn:
        conn.execute(update(access_user).where(access_user.c.id == row["id"])
                     .values(failed_count=access_user.c.failed_count + 1))
        count = conn.execute(select(access_user.c.failed_count).where(access_user.c.id == row["id"])).scalar_one()
        details = {"failures": count}
        if count >= settings.access_max_failures:
            until = now() + timedelta(minutes=settings.access_lock_minutes)
            conn.execute(update(access_user).where(access_user.c.id == row["id"])
                         .values(failed_count=0, locked_until=until))
            details["locked_until"] = until.isoformat()
        audit.record(conn, audit.SIGNIN_FAILED, actor=row["username"], ip=ip, reason=WRONG, **details)
    raise SignInFailed(WRONG)


def _fail(engine, reason: str, username: str, ip: str, **details):
    audit.record(engine, audit.SIGNIN_FAILED, actor=username or audit.ANONYMOUS, ip=ip, reason=reason, **details)
    raise SignInFailed(reason)
