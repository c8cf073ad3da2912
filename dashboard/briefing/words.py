"""The briefing's words (zh-CN, and English with ``--lang en``) and number formats.

Numbers are formatted here only, so the PDF, the charts' labels and the summary
write each figure the same way (the summary's test finds every number it says
in the PDF's text).
"""
from __future__ import annotations

from dashboard.domain import label

TEXT: dict[str, tuple[str, str]] = {
    "title": ("网格化治理周报", "Weekly grid governance briefing"),
    "header": ("{scope} · {week} · 生成于 {time}", "{scope} · {week} · generated {time}"),
    "page": ("第 {n} 页 / 共 {total} 页", "Page {n} of {total}"),
    "toc": ("目录", "Contents"),
    "font_note": ("本文档嵌入字体：{font}", "Font embedded in this document: {font}"),
    "partial": ("本周尚未结束：周内数字截至生成时间。", "The week is not over: its figures run to the generation time."),
    "no_data": ("本周本范围内没有事件或隐患数据。", "No events or hazards were recorded in this scope this week."),
    "as_of": ("在办、超期为截至生成时间（{time}）的状态。", "Open and overdue are as of the generation time ({time})."),
    "sec_summary": ("一、本周概况", "1. Summary"),
    "sec_headline": ("二、核心指标", "2. Headline figures"),
    "sec_trend": ("三、每日受理与结案", "3. Reported and closed per day"),
    "sec_category": ("四、事件类别、办理层级与来源渠道", "4. Events by category, tier and channel"),
    "sec_ranking": ("五、下级单位排名", "5. Ranking of the units one level down"),
    "sec_overdue": ("六、超期事件与隐患整改", "6. Overdue events and hazards"),
    "sec_sanling": ("七、三零社区", "7. Three-zero communities"),
    "sec_hotspots": ("八、热点网格", "8. Hotspot grids"),
    "col_metric": ("指标", "Figure"),
    "col_week": ("本周", "This week"),
    "col_prev": ("上周", "Last week"),
    "col_wow": ("环比", "Week on week"),
    "col_year": ("去年同期", "Same week last year"),
    "col_yoy": ("同比", "Year on year"),
    "no_history": ("无同期数据", "no data"),
    "m_reported": ("受理事件", "Events reported"),
    "m_registered": ("立案", "Registered"),
    "m_closed": ("结案", "Closed"),
    "m_response_rate": ("响应率", "Response rate"),
    "m_closure_rate": ("结案率", "Closure rate"),
    "m_on_time_rate": ("按期结案率", "On-time closure rate"),
    "m_rework_rate": ("返工率", "Rework rate"),
    "m_satisfaction_rate": ("满意率", "Satisfaction rate"),
    "m_hazards_found": ("新发现隐患", "Hazards found"),
    "m_hazards_rectified": ("整改隐患", "Hazards rectified"),
    "now_open": ("在办事件", "Open events"),
    "now_overdue": ("超期事件", "Overdue events"),
    "now_hz_open": ("整改中隐患", "Hazards open"),
    "now_hz_overdue": ("超期未整改隐患", "Hazards past deadline"),
    "col_day": ("日期", "Day"),
    "col_reported": ("受理", "Reported"),
    "col_closed": ("结案", "Closed"),
    "col_total": ("合计", "Total"),
    "col_category": ("大类", "Category"),
    "col_subcategory": ("小类", "Subcategory"),
    "col_count": ("件数", "Events"),
    "col_share": ("占比", "Share"),
    "col_level": ("办理层级", "Tier"),
    "col_source": ("来源渠道", "Channel"),
    "col_rank": ("排名", "Rank"),
    "col_unit": ("单位", "Unit"),
    "col_code": ("代码", "Code"),
    "col_mark": ("标记", "Mark"),
    "col_open": ("在办", "Open"),
    "col_overdue": ("超期", "Overdue"),
    "best": ("最佳", "best"),
    "worst": ("最差", "worst"),
    "col_event": ("事件编号", "Event"),
    "col_grid": ("网格", "Grid"),
    "col_reported_at": ("上报时间", "Reported"),
    "col_deadline": ("办理期限", "Deadline"),
    "col_overdue_h": ("超期小时", "Hours overdue"),
    "col_overtime": ("超时倍数", "Overtime ×"),
    "col_escalated": ("已升级", "Escalated"),
    "yes": ("是", "yes"),
    "overdue_note": ("超期事件按当前办理期限（自然小时）判定，截至生成时间；案件引擎上线后改用其工作时计时与督办标记。"
                     "列表不含上报人、地址与描述。",
                     "Overdue by the current deadline (natural hours) at the generation time; the case engine's "
                     "working-time clock and supervision flags replace it once it exists. No reporter, address "
                     "or description is listed."),
    "overdue_more": ("另有 {n} 件见工作簿。", "{n} more in the workbook."),
    "overdue_none": ("截至生成时间没有超期事件。", "No event is overdue at the generation time."),
    "hz_metric": ("隐患", "Hazards"),
    "hz_found": ("本周发现", "Found this week"),
    "hz_rectified": ("本周整改", "Rectified this week"),
    "hz_due": ("本周到期", "Due this week"),
    "hz_met": ("按期整改", "Rectified by the deadline"),
    "hz_missed": ("逾期未按期整改", "Missed the deadline"),
    "hz_open": ("整改中（截至生成时间）", "Open (at generation time)"),
    "hz_overdue": ("超期未整改（截至生成时间）", "Past deadline (at generation time)"),
    "sanling_line": ("{zero} / {total} 个社区保持三零（零上访、零事故、零发案）。",
                     "{zero} of {total} communities kept all three zeros (no petitions, accidents or crimes)."),
    "sanling_lost": ("失去的“零”", "Zeros lost"),
    "sanling_petitions": ("上访", "petitions"),
    "sanling_accidents": ("事故", "accidents"),
    "sanling_criminal": ("发案", "criminal cases"),
    "sanling_none": ("全部社区保持三零。", "Every community kept all three zeros."),
    "sanling_rule": ("判定口径见 docs/kpi.md：信访类事件、一级安全类事件、一级治安隐患事件。",
                     "Rules in docs/kpi.md: petition events, level-1 safety events, level-1 public-security events."),
    "hot_caption": ("网格每千人事件数（本周受理），无常住人口记录的网格不计算（灰色）。",
                    "Events per 1,000 residents per grid (reported this week); grids with no residents on record "
                    "have no rate (grey)."),
    "hot_top": ("每千人事件最多的网格", "Grids with the most events per 1,000 residents"),
    "hot_top_rule": ("排名只含常住人口不少于{}人的网格（专属网格人口少，比率不可比），全部网格见工作簿。",
                     "Ranked: grids with at least {} residents (dedicated grids have few, so their rates do not "
                     "compare); every grid is in the workbook."),
    "col_population": ("常住人口", "Residents"),
    "col_per1000": ("每千人", "Per 1,000"),
    "no_rate": ("无数据", "no data"),
    "ch_trend": ("每日受理与结案", "Reported and closed per day"),
    "ch_category": ("事件大类", "Events by category"),
    "ch_subcategory": ("事件小类（前{n}）", "Top {n} subcategories"),
    "ch_level": ("办理层级", "Events by tier"),
    "ch_source": ("来源渠道", "Events by channel"),
    "ch_ranking": ("{unit}按期结案率", "On-time closure rate by {unit}"),
    "ch_hazards": ("隐患发现与整改", "Hazards found and rectified"),
    "ch_hotspots": ("热点网格：每千人事件数", "Hotspots: events per 1,000 residents"),
    "map_scale": ("比例尺", "Scale"),
    "map_no_data": ("无人口数据", "No residents on record"),
    "map_streets": ("街道边界", "Street outline"),
    "map_communities": ("社区边界", "Community outline"),
    "no_events": ("本周无事件", "No events this week"),
    "sheet_headline": ("核心指标", "Headline"),
    "sheet_trend": ("每日趋势", "Daily"),
    "sheet_category": ("事件大类", "Categories"),
    "sheet_subcategory": ("事件小类", "Subcategories"),
    "sheet_level": ("办理层级", "Tiers"),
    "sheet_source": ("来源渠道", "Channels"),
    "sheet_ranking": ("下级排名", "Ranking"),
    "sheet_overdue": ("超期事件", "Overdue events"),
    "sheet_hazards": ("隐患整改", "Hazards"),
    "sheet_sanling": ("三零社区", "Three-zero"),
    "sheet_grids": ("网格热点", "Grids"),
    "sheet_about": ("说明", "About"),
    "about_scope": ("范围", "Scope"),
    "about_week": ("周次", "Week"),
    "about_generated": ("生成时间", "Generated"),
    "about_tz": ("时区", "Time zone"),
    "about_font": ("字体", "Font"),
    "about_history": ("数据起始", "History from"),
}


def w(key: str, lang: str = "zh", **fmt) -> str:
    zh, en = TEXT[key]
    text = en if lang == "en" else zh
    return text.format(**fmt) if fmt else text


def n(v) -> str:
    """A count with thousands separators; "—" when there is none."""
    return "—" if v is None else f"{int(v):,}"


def pct(rate) -> str:
    """A rate (0..1) as a percentage to 0.1; "—" when it has no denominator."""
    return "—" if rate is None else f"{rate * 100.0:.1f}%"


def share(part: int, total: int) -> str:
    return "—" if not total else f"{part * 100.0 / total:.1f}%"


def change_cell(kind: str, v, lang: str) -> str:
    """A 环比/同比 cell: +8.2% for a count, +1.2 pp (个百分点) for a rate."""
    if v is None:
        return "—"
    sign = "+" if v > 0 else ("-" if v < 0 else "±")
    unit = "%" if kind == "count" else ("个百分点" if lang == "zh" else " pp")
    return f"{sign}{abs(v):.1f}{unit}"


def level_name(level, lang: str) -> str:
    return label("event_level", int(level) if str(level).isdigit() else level, lang)


def unit_name(level: str, lang: str) -> str:
    """街道 / 社区 / 网格 (the units one level down)."""
    return label("level", level, lang)


def sub_name(category: str, sub, lang: str) -> str:
    cat = label("category", category, lang)
    if not sub:
        return f"{cat}·{'未分小类' if lang == 'zh' else 'unspecified'}"
    return label("subcategory", sub, lang)
