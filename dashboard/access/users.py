"""Users and wall tokens in the SQL store, and the principal a request acts as.

A wall token is shown once when made and kept only as its SHA-256 (it is 256 random bits, so a
fast hash is enough; a password needs Argon2). Every change is written to the audit log in the same
transaction as the change itself.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update

from ..store.schema import access_token, access_user, region
from . import audit
from .passwords import hash_password
from .roles import USER_ROLES, WALL, RoleError, check_role_scope

USERNAME_RE = re.compile(r"^[\w.@-]{1,64}$")


class AccessError(ValueError):
    """A user or token change that cannot be made (one line for the user)."""


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a signed-in user or a wall token. Flask-Login's user protocol."""
    kind: str            # "user" | "token"
    id: int
    name: str            # username, or the token's label
    role: str
    scope: str           # region code; '' = everything (administrators)
    stamp: str = ""      # changes when the password does: older sessions stop working

    @property
    def actor(self) -> str:
        return self.name if self.kind == "user" else f"token:{self.id}"

    # Flask-Login
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.kind[0]}:{self.id}:{self.stamp}"


def session_stamp(secret: str, password_hash: str) -> str:
    """A short keyed digest of the password hash: a session carries it, so a password change or a
    new key signs every older session out, and the cookie does not reveal the hash."""
    return hmac.new(secret.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:16]


def level_of(conn, code: str) -> str | None:
    return conn.execute(select(region.c.level).where(region.c.code == code)).scalar()


def region_exists(engine):
    def exists(code: str) -> bool:
        with engine.connect() as conn:
            return level_of(conn, code) is not None
    return exists


def _checked(conn, role: str, scope: str, *, roles=USER_ROLES) -> None:
    if role not in roles:
        raise AccessError(f"unknown role {role!r} (one of: {', '.join(roles)})")
    try:
        check_role_scope(role, scope, lambda code: level_of(conn, code))
    except RoleError as exc:
        raise AccessError(str(exc)) from None


def add_user(engine, username: str, password: str, role: str, scope: str = "", *, actor: str, ip: str = "") -> int:
    if not USERNAME_RE.match(username or ""):
        raise AccessError(f"user name {username!r} is not valid (1-64 letters, digits, . _ @ -)")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccessError(str(exc)) from None
    with engine.begin() as conn:
        _checked(conn, role, scope)
        if conn.execute(select(access_user.c.id).where(access_user.c.username == username)).first():
            raise AccessError(f"user {username!r} exists already")
        t = now()
        uid = conn.execute(access_user.insert().values(
            username=username, password_hash=hashed, role=role, scope=scope, disabled=False, failed_count=0,
            created_at=t, updated_at=t)).inserted_primary_key[0]
        audit.record(conn, audit.USER_ADDED, actor=actor, ip=ip, user=username, role=role, scope=scope)
    return uid


def get_user(conn, username: str):
    return conn.execute(select(access_user).where(access_user.c.username == username)).mappings().first()


def list_users(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(access_user).order_by(access_user.c.username)).mappings()]


def set_disabled(engine, username: str, disabled: bool, *, actor: str, ip: str = "") -> None:
    with engine.begin() as conn:
        done = conn.execute(update(access_user).where(access_user.c.username == username)
                            .values(disabled=disabled, updated_at=now())).rowcount
        if not done:
            raise AccessError(f"no user {username!r}")
        audit.record(conn, audit.USER_DISABLED if disabled else audit.USER_ENABLED, actor=actor, ip=ip, user=username)


def set_password(engine, username: str, password: str, *, actor: str, ip: str = "") -> None:
    """A new password also lifts a lock-out."""
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccessError(str(exc)) from None
    with engine.begin() as conn:
        done = conn.execute(update(access_user).where(access_user.c.username == username).values(
            password_hash=hashed, failed_count=0, locked_until=None, updated_at=now())).rowcount
        if not done:
            raise AccessError(f"no user {username!r}")
        audit.record(conn, audit.PASSWORD_CHANGED, actor=actor, ip=ip, user=username)


def user_principal(row, secret: str) -> Principal:
    return Principal("user", row["id"], row["username"], row["role"], row["scope"] or "",
                     session_stamp(secret, row["password_hash"]))


def load_user(engine, user_id: int, secret: str) -> Principal | None:
    """The principal of an enabled user, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(access_user).where(access_user.c.id == user_id)).mappings().first()
    if row is None or row["disabled"]:
        return None
    return user_principal(row, secret)


# --- wall tokens -----------------------------------------------------------------------------------

def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(engine, label: str, scope: str, *, actor: str, ip: str = "") -> tuple[int, str]:
    """(id, token): the token is shown once, only its digest is kept."""
    label = (label or "").strip()
    if not label or len(label) > 128:
        raise AccessError("a wall token needs a label of 1-128 characters (where the wall is)")
    token = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        _checked(conn, WALL, scope, roles=(WALL,))
        tid = conn.execute(access_token.insert().values(
            token_hash=token_digest(token), label=label, scope=scope, created_by=actor, created_at=now()
        )).inserted_primary_key[0]
        audit.record(conn, audit.TOKEN_CREATED, actor=actor, ip=ip, token_id=tid, label=label, scope=scope)
    return tid, token


def revoke_token(engine, token_id: int, *, actor: str, ip: str = "") -> None:
    with engine.begin() as conn:
        done = conn.execute(update(access_token).where(access_token.c.id == token_id)
                            .where(access_token.c.revoked_at.is_(None)).values(revoked_at=now())).rowcount
        if not done:
            known = conn.execute(select(access_token.c.id).where(access_token.c.id == token_id)).first()
            raise AccessError(f"wall token {token_id} is revoked already" if known else f"no wall token {token_id}")
        audit.record(conn, audit.TOKEN_REVOKED, actor=actor, ip=ip, token_id=token_id)


def list_tokens(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(access_token.c.id, access_token.c.label, access_token.c.scope, access_token.c.created_by,
                   access_token.c.created_at, access_token.c.revoked_at).order_by(access_token.c.id)).mappings()]


def _token_row_principal(row) -> Principal:
    return Principal("token", row["id"], row["label"], WALL, row["scope"])


def token_principal(engine, token: str | None) -> Principal | None:
    """The wall principal of a live (unrevoked) token, or None."""
    if not token or len(token) > 128:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(access_token).where(access_token.c.token_hash == token_digest(token))
                           .where(access_token.c.revoked_at.is_(None))).mappings().first()
    return None if row is None else _token_row_principal(row)


def load_token(engine, token_id: int) -> Principal | None:
    """A wall principal from its session (the token was checked when the session began); None once
    revoked, so a revoked wall's next request is refused."""
    with engine.connect() as conn:
        row = conn.execute(select(access_token).where(access_token.c.id == token_id)
                           .where(access_token.c.revoked_at.is_(None))).mappings().first()
    return None if row is None else _token_row_principal(row)


def load_principal(engine, ident: str, secret: str) -> Principal | None:
    """The principal named by a session's id (``Principal.get_id``), or None if it is no longer
    valid (disabled user, changed password, revoked token, malformed id)."""
    kind, _, rest = (ident or "").partition(":")
    num, _, stamp = rest.partition(":")
    if not num.isdigit():
        return None
    if kind == "u":
        p = load_user(engine, int(num), secret)
        return p if p is not None and hmac.compare_digest(p.stamp, stamp) else None
    if kind == "t":
        return load_token(engine, int(num))
    return None
