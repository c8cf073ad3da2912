"""The /audit page, for administrators only: the page answers 403 to anyone else before Dash's
index (dashboard.access.hardening), and the layout is built only for an administrator's request
(a forged router callback gets the refusal, not the rows)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from dash import html
from sqlalchemy import select

from dashboard.access import audit
from dashboard.access.roles import ADMINISTRATOR
from dashboard.i18n import t
from dashboard.store.schema import access_audit
from layouts.audit import PERIODS, audit_page

LIMIT = 2000
ACTIONS = sorted(v for k, v in vars(audit).items() if k.isupper() and isinstance(v, str) and k != "ANONYMOUS")


def is_admin(principal) -> bool:
    return principal is not None and principal.kind == "user" and principal.role == ADMINISTRATOR


def _day(text: str | None, tz) -> datetime | None:
    """A form's date as the start of that day in the deployment's time zone."""
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text), time(0), tzinfo=tz).astimezone(timezone.utc)


def page(services, query: dict, lang: str):
    from dashboard.access.web import client_ip, current_principal

    p = current_principal()
    if not is_admin(p):
        audit.record(services.engine, audit.PAGE_REFUSED, actor=getattr(p, "actor", audit.ANONYMOUS),
                     ip=client_ip(), where="/audit", role=getattr(p, "role", ""))
        return html.P(t("audit_refused", lang), className="audit-refused", role="alert")
    chosen = {k: (query.get(k) or "")[:64] for k in ("actor", "action", "since", "until", "period")}
    if chosen["period"] not in PERIODS:
        chosen["period"] = "all" if chosen["since"] or chosen["until"] else "7d"
    tz = ZoneInfo(services.settings.timezone)
    actors = known_actors(services.engine)
    try:
        since = _day(chosen["since"], tz)
        until = _day(chosen["until"], tz)
    except ValueError:
        return audit_page([], actors, ACTIONS, chosen, lang, LIMIT, message=t("audit_bad_date", lang))
    if since is None and chosen["period"] != "all":
        since = datetime.now(timezone.utc) - timedelta(days=int(chosen["period"][:-1]))
    rows = audit.query(services.engine, actor=chosen["actor"] or None, action=chosen["action"] or None,
                       since=since, until=until + timedelta(days=1) if until else None, limit=LIMIT)
    return audit_page(rows, actors, ACTIONS, chosen, lang, LIMIT)


def known_actors(engine, limit: int = 500) -> list[str]:
    """Who the log names, for the form's list (users and tokens are few; '-' is anonymous)."""
    with engine.connect() as conn:
        return list(conn.execute(select(access_audit.c.actor).distinct().order_by(access_audit.c.actor)
                                 .limit(limit)).scalars())


def register(app, services) -> None:
    from callbacks.router import PAGES

    PAGES["/audit"] = page
