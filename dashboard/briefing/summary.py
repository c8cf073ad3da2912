"""The summary a secretary reads out: a few sentences made from the week's figures.

Every number in it is one the document shows elsewhere (the headline, the
tables), formatted by the same functions (``words``); the tests extract the
numbers and find each one in the document.
"""
from __future__ import annotations

from dashboard.domain import label

from .words import n, pct, share, unit_name


PLURAL = {"street": "streets", "community": "communities", "grid": "grids", "micro": "micro-grids"}


def _dir_zh(v, kind: str) -> str:
    if v is None:
        return ""
    unit = "%" if kind == "count" else "个百分点"
    if v == 0:
        return "持平"
    return f"{'上升' if v > 0 else '下降'}{abs(v):.1f}{unit}" if kind == "count" else \
        f"{'提高' if v > 0 else '降低'}{abs(v):.1f}{unit}"


def _dir_en(v, kind: str) -> str:
    if v is None:
        return ""
    if v == 0:
        return "unchanged"
    unit = "%" if kind == "count" else " percentage points"
    return f"{'up' if v > 0 else 'down'} {abs(v):.1f}{unit}"


def _period(f: dict, lang: str) -> str:
    a, b = f["week"]["days"][0], f["week"]["days"][-1]
    return f"{f['week']['year']}年第{f['week']['week']}周（{a}至{b}）" if lang == "zh" else \
        f"In week {f['week']['iso']} ({a} to {b})"


def _lost(r: dict, lang: str) -> str:
    keys = (("petitions", "上访", "petitions"), ("accidents", "事故", "accidents"), ("criminal", "发案", "criminal cases"))
    if lang == "zh":
        return r["name"] + "（" + "、".join(f"{zh}{n(r[k])}件" for k, zh, _ in keys if r[k]) + "）"
    return r["name"] + " (" + ", ".join(f"{en} {n(r[k])}" for k, _, en in keys if r[k]) + ")"


def summary(f: dict, lang: str = "zh") -> list[str]:
    """The summary as sentences (zh: 。-terminated; en: one sentence each)."""
    zh = lang != "en"
    v, ch = f["values"], f["changes"]
    scope = f["scope"]["name"]
    out: list[str] = []
    if not f["has_data"]:
        out.append(f"{_period(f, lang)}，{scope}没有事件或隐患数据。" if zh else
                   f"{_period(f, lang)}, no events or hazards were recorded in {scope}.")
        return out
    wow, yoy = ch["reported"]["previous"], ch["reported"]["year_ago"]
    if zh:
        parts = [f"{_period(f, lang)}，{scope}共受理事件{n(v['reported'])}件"]
        parts.append(f"环比{_dir_zh(wow, 'count')}" if wow is not None else "环比无可比数据")
        parts.append(f"同比{_dir_zh(yoy, 'count')}" if yoy is not None else "同比无同期数据")
        out.append("，".join(parts) + "。")
        s = f"结案{n(v['closed'])}件，按期结案率{pct(v['on_time_rate'])}"
        d = ch["on_time_rate"]["previous"]
        if d is not None:
            s += f"，较上周{_dir_zh(d, 'rate')}"
        out.append(s + f"，响应率{pct(v['response_rate'])}。")
    else:
        parts = [f"{_period(f, lang)}, {scope} received {n(v['reported'])} events"]
        parts.append(f"{_dir_en(wow, 'count')} on the previous week" if wow is not None else "with no previous week to compare")
        parts.append(f"{_dir_en(yoy, 'count')} on the same week last year" if yoy is not None
                     else "and no data for the same week last year")
        out.append(", ".join(parts) + ".")
        s = f"{n(v['closed'])} were closed, {pct(v['on_time_rate'])} of them on time"
        d = ch["on_time_rate"]["previous"]
        if d is not None:
            s += f" ({_dir_en(d, 'rate')} on the previous week)"
        out.append(s + f"; the response rate was {pct(v['response_rate'])}.")
    total = v["reported"]
    cats = [r for r in f["by_category"] if r["count"] > 0]
    if cats:
        top = cats[0]
        name = label("category", top["key"], lang)
        rest = cats[1:3]
        if zh:
            s = f"按类别看，{name}类{n(top['count'])}件，占{share(top['count'], total)}，居首位"
            if rest:
                s += "；其次是" + "、".join(f"{label('category', r['key'], lang)}类{n(r['count'])}件" for r in rest)
            out.append(s + "。")
        else:
            s = f"By category, {name} led with {n(top['count'])} events ({share(top['count'], total)})"
            if rest:
                s += ", followed by " + " and ".join(f"{label('category', r['key'], lang)} ({n(r['count'])})" for r in rest)
            out.append(s + ".")
    srcs = [r for r in f["by_source"] if r["count"] > 0]
    if srcs:
        s0 = srcs[0]
        out.append(f"来源以{label('source', s0['key'], lang)}为主，{n(s0['count'])}件，占{share(s0['count'], total)}。" if zh
                   else f"Most reports came by {label('source', s0['key'], lang)}: {n(s0['count'])} "
                        f"({share(s0['count'], total)}).")
    best = next((r for r in f["units"] if r["mark"] == "best"), None)
    worst = next((r for r in f["units"] if r["mark"] == "worst"), None)
    if best and worst:
        unit = unit_name(f["child_level"], lang)
        out.append(f"各{unit}中，按期结案率最高的是{best['name']}（{pct(best['on_time_rate']['rate'])}），"
                   f"最低的是{worst['name']}（{pct(worst['on_time_rate']['rate'])}）。" if zh else
                   f"Among the {PLURAL.get(f['child_level'], unit.lower())}, {best['name']} closed the most on time "
                   f"({pct(best['on_time_rate']['rate'])}) and {worst['name']} the fewest "
                   f"({pct(worst['on_time_rate']['rate'])}).")
    h = f["hazards"]
    od = f["open_now"]["overdue"]
    if zh:
        out.append(f"截至生成时，超期未结事件{n(od)}件。")
        s = f"本周发现隐患{n(h['found'])}处，整改{n(h['rectified'])}处"
        if h["due"]:
            s += f"；本周到期的{n(h['due'])}处隐患中，{n(h['missed'])}处未按期整改"
        out.append(s + "。")
    else:
        out.append(f"At the time of writing {n(od)} open events are past their deadline.")
        s = f"{n(h['found'])} hazards were found and {n(h['rectified'])} rectified this week"
        if h["due"]:
            s += f"; of the {n(h['due'])} due this week, {n(h['missed'])} missed the deadline"
        out.append(s + ".")
    sl = f["sanling"]
    if sl["total"]:
        lost = [r for r in sl["communities"] if not r["zero"]]
        if zh:
            s = f"{n(sl['total'])}个社区中{n(sl['zero'])}个保持三零"
            if lost:
                s += "，未达标的有" + "、".join(_lost(r, lang) for r in lost[:3]) + ("等" if len(lost) > 3 else "")
            out.append(s + "。")
        else:
            s = f"{n(sl['zero'])} of {n(sl['total'])} communities kept all three zeros"
            if lost:
                s += "; not: " + "; ".join(_lost(r, lang) for r in lost[:3]) + (" and others" if len(lost) > 3 else "")
            out.append(s + ".")
    return out


def text(f: dict, lang: str = "zh") -> str:
    return (" " if lang == "en" else "").join(summary(f, lang))
