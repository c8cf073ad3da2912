"""The /briefing page: choose a scope and a week, preview the summary and the charts, download
each file or a ZIP of all. Pure: data in, components out.

The choice is a plain GET form (``/briefing?scope=…&week=…``): the page is rendered again for the
new choice, with no client-side state to keep in step. Styles are inline so the wall's pages load
no stylesheet of this one. Every text is a text node (never HTML).
"""
from __future__ import annotations

from dash import html

from dashboard import ids
from dashboard.components import Store
from dashboard.i18n import t

INK, MUTED, RULE, ACCENT = "#1F2933", "#52606D", "#D9E2EC", "#0072B2"
PAGE = {"fontFamily": "'Noto Sans CJK SC', 'Source Han Sans SC', sans-serif", "color": INK, "background": "#FFFFFF",
        "minHeight": "100vh", "margin": "0", "padding": "24px 32px", "boxSizing": "border-box"}
FIELD = {"display": "inline-flex", "flexDirection": "column", "gap": "4px", "marginRight": "16px", "fontSize": "14px"}
CONTROL = {"fontSize": "16px", "padding": "6px 8px", "minWidth": "220px"}
BUTTON = {"fontSize": "16px", "padding": "8px 20px", "background": ACCENT, "color": "#FFFFFF", "border": "none",
          "borderRadius": "4px", "cursor": "pointer", "verticalAlign": "bottom"}
LEVEL_INDENT = {"district": "", "street": "\u3000", "community": "\u3000\u3000"}


def briefing_page(scopes: list[dict], weeks: list[str], chosen: dict, lang: str) -> html.Div:
    """scopes: [{"code", "name", "level"}] in code order; weeks: ISO weeks, newest first;
    chosen: {"scope", "week", "lang"} (what the preview will show)."""
    scope_options = [html.Option(f"{LEVEL_INDENT.get(s['level'], '')}{s['name']} {s['code']}", value=s["code"],
                                 selected=s["code"] == chosen.get("scope")) for s in scopes]
    week_options = [html.Option(wk, value=wk, selected=wk == chosen.get("week")) for wk in weeks]
    if chosen.get("week") and chosen["week"] not in weeks:
        week_options.insert(0, html.Option(chosen["week"], value=chosen["week"], selected=True))
    return html.Div(id=ids.BRIEFING, className="briefing", lang="en" if lang == "en" else "zh-CN", style=PAGE, children=[
        html.H1(t("briefing_title", lang), style={"margin": "0 0 4px", "fontSize": "28px"}),
        html.P(t("app_title", lang), style={"margin": "0 0 16px", "color": MUTED}),
        html.Form(id=ids.BRIEFING_FORM, method="get", action="/briefing",
                  style={"padding": "12px 0 16px", "borderBottom": f"1px solid {RULE}"}, children=[
            html.Label([html.Span(t("briefing_scope", lang)),
                        html.Select(scope_options, name="scope", className="bf-scope", style=CONTROL)], style=FIELD),
            html.Label([html.Span(t("briefing_week", lang)),
                        html.Select(week_options, name="week", className="bf-week", style=CONTROL)], style=FIELD),
            # the form keeps the page's language (a GET form sends only its own fields)
            html.Select([html.Option(lang, value=lang, selected=True)], name="lang", hidden=True),
            html.Button(t("briefing_make", lang), type="submit", className="bf-make", style=BUTTON),
        ]),
        html.Section(id=ids.BRIEFING_PREVIEW, className="bf-preview", children=pending(lang)),
        Store(id=ids.BRIEFING_REQUEST, data=chosen),
    ])


def pending(lang: str) -> html.P:
    return html.P(t("briefing_generating", lang), className="bf-pending", style={"color": MUTED, "fontSize": "18px"})


def error(message: str, lang: str) -> html.Div:
    return html.Div(t("briefing_error", lang, error=message), className="bf-error", role="alert",
                    style={"padding": "12px 16px", "borderLeft": "4px solid #D55E00", "background": "#FDF0E8",
                           "fontSize": "16px", "marginTop": "16px"})


def preview(result: dict, lang: str) -> list:
    """result: {"title", "summary": [sentences], "font", "files": [{"label", "url", "name"}],
    "charts": [{"title", "stem", "png", "png2x", "svg"}]} (urls; a chart's files download as
    stem-name)."""
    h2 = {"fontSize": "20px", "margin": "20px 0 8px"}
    link = {"color": ACCENT, "marginRight": "12px"}
    return [
        html.H2(result["title"], className="bf-heading", style={"fontSize": "22px", "margin": "16px 0 4px"}),
        html.P(t("briefing_font", lang, font=result["font"]), className="bf-font", style={"color": MUTED, "margin": "0"}),
        html.H2(t("briefing_downloads", lang), style=h2),
        html.Ul(className="bf-downloads", style={"paddingLeft": "20px", "lineHeight": "1.9"}, children=[
            html.Li(html.A(f["label"], href=f["url"], download=f["name"], className=f"bf-file bf-file--{f['key']}",
                           style=link)) for f in result["files"]]),
        html.H2(t("briefing_summary", lang), style=h2),
        html.Div(className="bf-summary", style={"maxWidth": "900px", "fontSize": "16px", "lineHeight": "1.8"},
                 children=[html.P(s, style={"margin": "0 0 6px"}) for s in result["summary"]]),
        html.H2(t("briefing_charts", lang), style=h2),
        html.Div(className="bf-charts", style={"display": "grid", "gridTemplateColumns": "repeat(auto-fill, minmax(560px, 1fr))",
                                               "gap": "16px"}, children=[
            html.Figure(className="bf-chart", style={"margin": "0", "border": f"1px solid {RULE}", "padding": "8px"}, children=[
                html.Img(src=c["png"], alt=c["title"], style={"width": "100%", "height": "auto", "display": "block"}),
                html.Figcaption(style={"fontSize": "13px", "marginTop": "6px"}, children=[
                    html.Span(c["title"], style={"marginRight": "12px"}),
                    html.A("PNG", href=c["png"], download=f"{c['stem']}-{c['png'].rsplit('/', 1)[-1]}", style=link),
                    html.A("PNG 2×", href=c["png2x"], download=f"{c['stem']}-{c['png2x'].rsplit('/', 1)[-1]}", style=link),
                    html.A("SVG", href=c["svg"], download=f"{c['stem']}-{c['svg'].rsplit('/', 1)[-1]}", style=link),
                ]),
            ]) for c in result["charts"]]),
    ]
