"""``python -m dashboard briefing --week 2026-W47 --scope 370202 --out DIR [--lang en] [--streets]``.

For a scheduled job: a progress bar when stderr is a terminal, plain log lines otherwise, and
exit status 2 with one clear line for what the user can fix (an unknown scope, a week in the
future, a missing font). A week without data is not a failure: the document says so.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from dashboard.errors import CliError

from .errors import BriefingError

log = logging.getLogger("dashboard.briefing")


def add_arguments(p) -> None:
    p.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: last week in TIMEZONE)")
    p.add_argument("--scope", required=True, help="region code: a district, street or community, e.g. 370202")
    p.add_argument("--streets", action="store_true",
                   help="one briefing for each street inside --scope (a district) instead of one for the scope")
    p.add_argument("--out", required=True, help="folder to write into (one sub-folder per briefing)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="language of the documents (default zh)")


class _Progress:
    """tqdm on a terminal; log lines (one per step) for cron and pipes."""

    def __init__(self, total_steps: int, briefings: int):
        self.bar = None
        self.total = total_steps * briefings
        if sys.stderr.isatty():
            import shutil

            from tqdm import tqdm

            # a terminal that reports no size (a bare pty: cron under script, CI) gives tqdm 0 rows,
            # and it hides a bar below the last row: nothing at all would show
            size = shutil.get_terminal_size((100, 24))
            self.bar = tqdm(total=self.total, unit="step", desc="briefing", file=sys.stderr, ncols=size.columns,
                            nrows=size.lines)


    def __call__(self, scope: str, step: str, i: int, n: int) -> None:
        self.scope = scope
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.scope} {step}", refresh=False)
            self.bar.update(1)
        else:
            log.info("briefing %s: %s (%d/%d)", self.scope, step, i, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args, settings) -> int:
    from sqlalchemy import select

    from dashboard.store.engine import make_engine, migrate
    from dashboard.store.schema import region

    from . import build
    from .figures import scope_row
    from .week import resolve

    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        now = datetime.now(timezone.utc)
        try:
            week = resolve(args.week, now, settings.timezone)
            me = scope_row(engine, args.scope)
            scopes = [args.scope]
            if args.streets:
                with engine.connect() as conn:
                    scopes = [c for (c,) in conn.execute(select(region.c.code).where(
                        region.c.level == "street", region.c.parent_code == me["code"]).order_by(region.c.code))]
                if not scopes:
                    raise BriefingError(f"scope {args.scope} ({me['name']}) has no streets")
            progress = _Progress(len(build.STEPS), len(scopes))
            out = Path(args.out)
            try:
                made = build.make_many(engine, scopes, week, out, tz=settings.timezone, lang=args.lang, now=now,
                                       root=args.scope, progress=progress)
            finally:
                progress.close()
        except BriefingError as exc:
            raise CliError(str(exc)) from None
        for b in made:
            note = "" if b.figures["has_data"] else " (no data this week: the document says so)"
            print(f"{b.scope} {b.week}: {b.files['pdf']}{note}")
            log.info("briefing %s %s written to %s", b.scope, b.week, b.folder)
        return 0
    finally:
        engine.dispose()
