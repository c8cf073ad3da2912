"""The audit log: who, when, from where, what. Append-only: the app only inserts and reads, and the
database refuses UPDATE and DELETE on the table (triggers, migration 0004)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from ..store.schema import access_audit

# actions
SIGNIN_OK = "signin_ok"
SIGNIN_FAILED = "signin_failed"
SIGNOUT = "signout"
SESSION_EXPIRED = "session_expired"
SESSION_REFUSED = "session_refused"   # a session naming a disabled, changed or missing user
TOKEN_REFUSED = "token_refused"       # a wall token that is revoked or unknown
TOKEN_SIGNIN = "token_signin"
USER_ADDED = "user_added"
USER_DISABLED = "user_disabled"
USER_ENABLED = "user_enabled"
PASSWORD_CHANGED = "password_changed"
TOKEN_CREATED = "token_created"
TOKEN_REVOKED = "token_revoked"
SCOPE_REFUSED = "scope_refused"
RECORD_REVEALED = "record_revealed"   # one person's or vehicle's record shown in full (masking.py)
RECORD_REFUSED = "record_refused"     # a record asked for outside the scope, or in full by a role that may not
CSRF_REFUSED = "csrf_refused"         # a cookie-authorised state-changing request without its CSRF token
PAGE_REFUSED = "page_refused"         # a page the role may not open (the audit page for a non-administrator)
ANONYMOUS = "-"


def record(engine_or_conn, action: str, *, actor: str = ANONYMOUS, ip: str = "", **details) -> None:
    """Write one row. Takes an engine (own transaction) or a connection (the caller's)."""
    row = {"at": datetime.now(timezone.utc), "actor": (actor or ANONYMOUS)[:80], "ip": (ip or "")[:64],
           "action": action, "details": json.dumps(details, ensure_ascii=False, sort_keys=True, default=str)}
    if hasattr(engine_or_conn, "begin") and not hasattr(engine_or_conn, "in_transaction"):
        with engine_or_conn.begin() as conn:
            conn.execute(access_audit.insert(), row)
    else:
        engine_or_conn.execute(access_audit.insert(), row)


def scope_refused(engine, principal, refusal, *, ip: str = "", where: str = "") -> None:
    record(engine, SCOPE_REFUSED, actor=getattr(principal, "actor", ANONYMOUS), ip=ip,
           requested=refusal.requested, allowed=refusal.allowed, reason=refusal.reason, where=where)


def query(engine, *, actor: str | None = None, action: str | None = None, since: datetime | None = None,
          until: datetime | None = None, limit: int = 100) -> list[dict]:
    """Newest first."""
    q = select(access_audit).order_by(access_audit.c.id.desc()).limit(limit)
    if actor:
        q = q.where(access_audit.c.actor == actor)
    if action:
        q = q.where(access_audit.c.action == action)
    if since:
        q = q.where(access_audit.c.at >= since)
    if until:
        q = q.where(access_audit.c.at < until)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{**r, "details": json.loads(r["details"] or "{}")} for r in rows]
