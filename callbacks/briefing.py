"""The /briefing page and its files.

The page is rendered from its query (``scope``, ``week``, ``lang``); its one callback makes the
briefing (dashboard.briefing.build, the same code as ``python -m dashboard briefing``) into
VAR_DIR/briefings/ and fills the preview; the files are served from there by
``/briefing/files/<briefing>/<file>``. A briefing asked for again within a minute is not made
again. Scope is the sign-in's rule (``dashboard.access.web.request_scope``), checked on the
server for the page's choices, the callback that makes a briefing and every file served: a
street's secretary sees their street and what is inside it, never the district's briefing.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import flask
from dash import Input, Output
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from dashboard import ids, kpi
from dashboard.briefing import BriefingError, build, fonts
from dashboard.briefing import week as weeks
from dashboard.briefing.words import w
from dashboard.i18n import pick_lang, t
from dashboard.store.schema import region
from dashboard.store.scope import in_scope
from layouts.briefing import briefing_page, error, preview

STEM = re.compile(r"^briefing-(\d{6,24})-\d{4}-W\d{2}(-en)?$")
WEEKS_SHOWN = 26
REUSE_S = 60.0


def folder(services) -> Path:
    return Path(services.settings.var_path) / "briefings"


def allowed(services, requested: str | None) -> str | None:
    """The scope this request may see for ``requested`` (None: the viewer's own); raises
    werkzeug's Forbidden (403) for a scope outside the viewer's, audited by the access layer."""
    from dashboard.access.web import request_scope

    # a code no region has (inside the viewer's scope) goes on to build, which refuses it in words
    return request_scope(services, requested or None, where="/briefing", unknown_ok=True)


def scopes(services, within: str | None) -> list[dict]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(region.c.code, region.c.name, region.c.level)
                            .where(region.c.level.in_(("district", "street", "community")), in_scope(region.c.code, within))
                            .order_by(region.c.code)).mappings().all()
    return [dict(r) for r in rows]


def page(services, query: dict, lang: str):
    tz = services.settings.timezone
    today = kpi.local_date(datetime.now(timezone.utc), tz)
    listed = [weeks.of_day(today - timedelta(days=7 * i)).iso for i in range(WEEKS_SHOWN + 1)]
    try:
        own = allowed(services, None)
    except Forbidden as exc:
        return error(exc.description, lang)
    options = scopes(services, own)
    default = own or next((s["code"] for s in options if s["level"] == "district"),
                          options[0]["code"] if options else "")
    chosen = {"scope": query.get("scope") or default, "week": query.get("week") or listed[1], "lang": lang}
    return briefing_page(options, listed, chosen, lang)


def make(services, scope: str, week: str, lang: str) -> build.Briefing:
    """The briefing's files (made at most once a minute per scope, week and language)."""
    tz = services.settings.timezone
    wk = weeks.resolve(week, datetime.now(timezone.utc), tz)
    key = build.stem(scope, wk.iso, lang)
    return services.shared("briefing", key, lambda: build.make(services.engine, scope, wk, folder(services),
                                                               tz=tz, lang=lang), ttl_s=REUSE_S)


def files_url(b: build.Briefing, rel: str) -> str:
    return f"/briefing/files/{b.stem}/{rel}"


def result(b: build.Briefing, lang: str) -> dict:
    f = b.figures
    files = [{"key": "zip", "label": t("briefing_zip", lang)}, {"key": "pdf", "label": t("briefing_pdf", lang)},
             {"key": "xlsx", "label": t("briefing_xlsx", lang)}, {"key": "summary", "label": t("briefing_text", lang)}]
    for item in files:
        path = b.files[item["key"]]
        item.update(url=files_url(b, path.name), name=path.name)
    charts = [{"title": title, "stem": b.stem, **{k: files_url(b, f"charts/{name}{suffix}")
                                                  for k, suffix in (("png", ".png"), ("png2x", "@2x.png"), ("svg", ".svg"))}}
              for name, title in b.chart_titles]
    title = f"{w('title', lang)} · {f['scope']['name']}（{f['scope']['code']}）· {f['week']['iso']}" if lang != "en" \
        else f"{w('title', lang)} · {f['scope']['name']} ({f['scope']['code']}) · {f['week']['iso']}"
    return {"title": title, "summary": b.summary, "font": fonts.font().describe(lang), "files": files, "charts": charts}


def register(app, services) -> None:
    from callbacks.router import PAGES

    PAGES["/briefing"] = page

    @app.server.route("/briefing/files/<stem>/<path:name>")
    def briefing_file(stem: str, name: str):
        m = STEM.match(stem)
        if not m:
            flask.abort(404)
        allowed(services, m.group(1))  # 403 for a briefing outside the viewer's scope
        # a chart keeps its briefing's name when saved (trend.png alone says too little)
        saved = f"{stem}-{name.rsplit('/', 1)[-1]}" if "/" in name else name
        return flask.send_from_directory(folder(services) / stem, name, as_attachment=True, download_name=saved,
                                         max_age=0)

    @app.callback(Output(ids.BRIEFING_PREVIEW, "children"), Input(ids.BRIEFING_REQUEST, "data"))
    def make_preview(req):
        req = req or {}
        lang = pick_lang(req.get("lang"), services.settings.ui_lang)
        try:
            scope = allowed(services, str(req.get("scope") or "")) or ""
            b = make(services, scope, str(req.get("week") or ""), lang)
        except BriefingError as exc:
            return error(str(exc), lang)
        except Forbidden as exc:
            return error(exc.description, lang)
        return preview(result(b, lang), lang)
