"""The weekly briefing's files against a week computed by hand: the PDF's text (pdftotext) and
fonts (pdffonts), the workbook's cells (openpyxl) and the summary's numbers."""
from __future__ import annotations

import subprocess
import zipfile
from datetime import datetime

import openpyxl
import pytest

from dashboard.briefing import BriefingError, build, fonts
from dashboard.briefing import week as weeks
from dashboard.domain import label
from dashboard.store.schema import region
from tests.unit.brief_support import (
    DAYS, WEEK, by_hand, line_with, numbers, pct, pdffonts, pdftotext, without_section,
)
from tests.unit.kpi_fixtures import COMMUNITIES, DISTRICT, GRIDS, NOW, STREET_A, TZ, seeded

HEADLINE = ("reported", "registered", "closed", "response_rate", "closure_rate", "on_time_rate", "rework_rate",
            "satisfaction_rate", "hazards_found", "hazards_rectified")
ZH = {"reported": "受理事件", "registered": "立案", "closed": "结案", "response_rate": "响应率",
      "closure_rate": "结案率", "on_time_rate": "按期结案率", "rework_rate": "返工率", "satisfaction_rate": "满意率",
      "hazards_found": "新发现隐患", "hazards_rectified": "整改隐患"}


def fmt(key, v) -> str:
    return pct(v) if key.endswith("_rate") else f"{v:,}"


@pytest.fixture
def district(engine, tmp_path):
    world = seeded(engine)
    b = build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path / "out", tz=TZ, now=NOW)
    return world, b


def test_brief001_pdf_text_carries_the_weeks_figures_scope_and_week(district):
    world, b = district
    hand = by_hand(world, DISTRICT)
    prev = by_hand(world, DISTRICT, [d.replace(day=d.day - 7) for d in DAYS])
    text = pdftotext(b.files["pdf"])
    assert "市南区（370202）" in text and "2026-W46" in text
    assert "2026-11-09" in text and "2026-11-15" in text
    assert "2026-11-20 12:00" in text  # generated at NOW, local time, in the header
    assert hand["reported"] > 0 and prev["reported"] > 0
    for key in HEADLINE:
        row = line_with(text, ZH[key]).split()
        assert row[1] == fmt(key, hand[key]), (key, row)          # this week
        assert row[2] == fmt(key, prev[key]), (key, row)          # last week
        assert row[4] == "无同期数据", (key, row)                  # the history does not reach a year back
    wow = (hand["reported"] - prev["reported"]) * 100.0 / prev["reported"]
    assert line_with(text, ZH["reported"]).split()[3] == f"{'+' if wow > 0 else '-'}{abs(wow):.1f}%"
    for cat, count in hand["categories"].items():
        cells = line_with(text, label("category", cat)).split()
        assert cells[1] == f"{count:,}" and cells[2] == f"{count * 100.0 / hand['reported']:.1f}%"
    now_row = text.splitlines()[text.splitlines().index(line_with(text, "在办事件")) + 1].split()
    assert now_row[1] == f"{hand['overdue_now']:,}"
    # the table of contents of a district's briefing, and page numbers
    assert "目录" in text and "八、热点网格" in text
    pages = subprocess.run(["pdfinfo", str(b.files["pdf"])], capture_output=True, text=True).stdout
    n_pages = int(next(ln for ln in pages.splitlines() if ln.startswith("Pages:")).split()[1])
    squeezed = "".join(text.split())  # pdftotext drops the spaces between CJK glyphs
    assert f"第1页/共{n_pages}页" in squeezed and f"第{n_pages}页/共{n_pages}页" in squeezed
    assert "A4" in pages or "595.276 x 841.89" in pages


def test_brief002_fonts_are_embedded_and_every_char_is_in_the_font(district):
    _, b = district
    fs = pdffonts(b.files["pdf"])
    assert fs and all(f["emb"] == "yes" and f["uni"] == "yes" for f in fs), fs
    assert all("NotoSansCJKsc" in f["name"] for f in fs), fs
    text = pdftotext(b.files["pdf"], layout=False)
    font = fonts.font()
    assert font.full_name == "Noto Sans CJK SC Regular" and "SimHei" not in str(font.path)
    assert font.missing(text.replace("\f", "")) == []
    assert "Noto Sans CJK SC Regular" in text  # the document says which font it embedded
    # a page renders (pdftoppm) to a picture that is not blank
    png = b.folder / "page1"
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "2", "-l", "2", str(b.files["pdf"]), str(png)],
                   check=True, timeout=120)
    from PIL import Image

    img = Image.open(next(b.folder.glob("page1*.png"))).convert("L")
    assert img.getextrema()[0] < 100 < img.getextrema()[1]


def test_brief003_workbook_cells_are_typed_frozen_named_in_chinese_and_add_up(district):
    world, b = district
    hand = by_hand(world, DISTRICT)
    wb = openpyxl.load_workbook(b.files["xlsx"])
    assert wb.sheetnames == ["核心指标", "每日趋势", "事件大类", "事件小类", "办理层级", "来源渠道", "下级排名",
                             "超期事件", "隐患整改", "三零社区", "网格热点", "说明"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2", ws.title
    head = wb["核心指标"]
    got = {head.cell(r, 1).value: head.cell(r, 2).value for r in range(2, 12)}
    for key in HEADLINE:
        v = got[ZH[key]]
        if key.endswith("_rate"):
            assert v == pytest.approx(hand[key]) and head.cell(2 + HEADLINE.index(key), 2).number_format == "0.0%"
        else:
            assert v == hand[key] and isinstance(v, int)
    daily = wb["每日趋势"]
    rows = list(daily.iter_rows(min_row=2, values_only=True))
    assert [r[0].date() for r in rows] == DAYS and all(isinstance(r[0], datetime) for r in rows)
    assert [r[1] for r in rows] == hand["daily_reported"] and [r[2] for r in rows] == hand["daily_closed"]
    for sheet, key in (("事件大类", "categories"), ("办理层级", "levels"), ("来源渠道", "sources")):
        vals = [r[1] for r in wb[sheet].iter_rows(min_row=2, values_only=True)]
        assert sum(vals) == hand["reported"] == sum(hand[key].values()), sheet
    assert wb["超期事件"].max_row - 1 == hand["overdue_now"]
    assert all(isinstance(r[7], datetime) for r in wb["超期事件"].iter_rows(min_row=2, values_only=True))
    grids = {r[1]: r[4] for r in wb["网格热点"].iter_rows(min_row=2, values_only=True)}
    assert grids == hand["per_1000"]
    assert grids["370202001002001"] is None  # no residents: no rate, not 0
    sl = {r[1]: r[5] for r in wb["三零社区"].iter_rows(min_row=2, values_only=True)}
    assert {c for c, zero in sl.items() if zero is None} == hand["sanling_lost"]
    assert set(sl) == set(COMMUNITIES)
    # the PDF's daily table adds up to the same total
    assert line_with(pdftotext(b.files["pdf"]), "合计").split()[1] == f"{sum(hand['daily_reported']):,}"


def test_brief004_every_number_of_the_summary_is_one_of_the_documents(district, engine, tmp_path):
    world, b = district
    hand = by_hand(world, DISTRICT)
    said = "".join(b.summary)
    assert f"共受理事件{hand['reported']:,}件" in said and "同比无同期数据" in said
    text = pdftotext(b.files["pdf"], layout=False)
    # the document without its summary section: the numbers must come from the tables
    rest = without_section(text, "一、本周概况", "二、核心指标")
    missing = numbers(said) - numbers(rest)
    assert not missing, (missing, said)
    assert b.files["summary"].read_text(encoding="utf-8").strip() == said
    en = build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path / "en", tz=TZ, now=NOW, lang="en")
    said_en = " ".join(en.summary)
    assert f"received {hand['reported']:,} events" in said_en
    en_text = pdftotext(en.files["pdf"], layout=False)
    en_rest = without_section(en_text, "1. Summary", "2. Headline figures")
    assert not numbers(said_en) - numbers(en_rest), said_en
    wb = openpyxl.load_workbook(en.files["xlsx"])
    assert wb.sheetnames[0] == "Headline"


def test_brief005_charts_come_as_png_1x_2x_and_svg_and_the_zip_holds_every_file(district):
    _, b = district
    from PIL import Image

    names = [n for n, _ in b.chart_titles]
    assert names == ["trend", "categories", "subcategories", "levels", "sources", "ranking", "hazards", "hotspots"]
    for n in names:
        one = Image.open(b.files[f"charts/{n}.png"])
        two = Image.open(b.files[f"charts/{n}@2x.png"])
        assert two.size == (one.size[0] * 2, one.size[1] * 2) and one.size == (1280, 720)
        assert b.files[f"charts/{n}.svg"].read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with zipfile.ZipFile(b.files["zip"]) as z:
        listed = set(z.namelist())
    assert {f"{b.stem}/{p.relative_to(b.folder).as_posix()}" for k, p in b.files.items() if k != "zip"} == listed


def test_brief006_a_street_week_without_data_says_so(engine, tmp_path):
    seeded(engine)
    # another document first, in the same process: its font subset lacks this one's characters
    # (ReportLab once handed every later subset of the same face the first one: tofu boxes)
    build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path, tz=TZ, now=NOW)
    b = build.make(engine, STREET_A, weeks.parse("2026-W20"), tmp_path, tz=TZ, now=NOW)
    assert not b.figures["has_data"]
    text = pdftotext(b.files["pdf"])
    assert "本周本范围内没有事件或隐患数据" in text and "市南区 › 八大峡街道（370202001）" in text
    assert fonts.font().missing(pdftotext(b.files["pdf"], layout=False)) == []
    assert "目录" not in text  # contents only for a district
    assert b.summary == ["2026年第20周（2026-05-11至2026-05-17），八大峡街道没有事件或隐患数据。"]


def test_brief007_a_character_the_font_lacks_fails_loudly_never_as_tofu(engine, tmp_path):
    seeded(engine)
    with engine.begin() as conn:
        conn.execute(region.update().where(region.c.code == STREET_A).values(name="八大峡街道😀"))
    with pytest.raises(BriefingError, match="U\\+1F600"):
        build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path, tz=TZ, now=NOW)
    assert not list(tmp_path.rglob("*.pdf"))


def test_brief008_no_font_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fonts, "CANDIDATES", (("mplfonts", "fonts/NoSuchFont.otf"), ("no_such_pkg", "x.otf")))
    fonts.font.cache_clear()
    try:
        with pytest.raises(BriefingError, match="no CJK font"):
            fonts.font()
    finally:
        monkeypatch.undo()
        fonts.font.cache_clear()
    assert fonts.font().family == "Noto Sans CJK SC"


def test_brief009_unknown_scope_and_future_week_are_refused(engine):
    seeded(engine)
    from dashboard.briefing.figures import scope_row

    with pytest.raises(BriefingError, match="unknown scope 999999"):
        scope_row(engine, "999999")
    with pytest.raises(BriefingError, match="in the future"):
        weeks.resolve("2026-W48", NOW, TZ)
    assert weeks.resolve(None, NOW, TZ).iso == WEEK
    assert weeks.resolve("2026-W47", NOW, TZ).iso == "2026-W47"  # this week so far: allowed
    assert GRIDS  # the fixture's grids exist


def test_brief010_hotspot_ranking_leaves_out_grids_with_few_residents(engine, tmp_path):
    import sqlalchemy as sa

    from dashboard.briefing.pdf import HOT_MIN_RESIDENTS

    world = seeded(engine)
    few = "370202001001002"  # a dedicated grid's order of residents: a few events give a huge rate
    with engine.begin() as conn:
        conn.execute(sa.update(region).where(region.c.code == few).values(population=HOT_MIN_RESIDENTS - 1))
    b = build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path / "out", tz=TZ, now=NOW)
    text = pdftotext(b.files["pdf"])
    table = text[text.rindex("每千人事件最多的网格"):]
    ranked = [g for g in GRIDS if f"网格{g[-6:]}" in table]
    assert few not in ranked and "370202001001001" in ranked, ranked
    assert f"常住人口不少于{HOT_MIN_RESIDENTS}人" in table.replace("\n", "")
    # the workbook still carries every grid's rate
    wb = openpyxl.load_workbook(b.files["xlsx"])
    grids = {r[1]: r[4] for r in wb["网格热点"].iter_rows(min_row=2, values_only=True)}
    assert grids[few] is not None and grids[few] > 0, world
