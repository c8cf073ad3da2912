"""``python -m dashboard audit``: the audit log, newest first, as TSV or JSON lines."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from ..errors import CliError


def add_arguments(p) -> None:
    p.add_argument("--actor", help="only this user name (or token:<id>)")
    p.add_argument("--action", help="only this action, e.g. signin_failed, scope_refused, token_revoked")
    p.add_argument("--since", help="from this date or time (ISO 8601, UTC unless it says)")
    p.add_argument("--until", help="before this date or time")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object a line")


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--{name} {text!r} is not an ISO date or time (e.g. 2026-12-06 or 2026-12-06T08:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def run(args, settings) -> int:
    from ..store.engine import make_engine, migrate
    from .audit import query

    since, until = _when(args.since, "since"), _when(args.until, "until")
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        rows = query(engine, actor=args.actor, action=args.action, since=since, until=until, limit=args.limit)
    finally:
        engine.dispose()
    if not args.json:
        print("at\tactor\tip\taction\tdetails")
    for r in rows:
        if args.json:
            print(json.dumps({**r, "at": r["at"].isoformat()}, ensure_ascii=False))
        else:
            print(f"{r['at'].isoformat()}\t{r['actor']}\t{r['ip'] or '-'}\t{r['action']}\t"
                  f"{json.dumps(r['details'], ensure_ascii=False, sort_keys=True)}")
    return 0
