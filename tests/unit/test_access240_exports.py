"""Exports carry no personal data (issue 18, item 4): the weekly briefing's every file (PDF text, the
workbook's cells, summary, charts, the ZIP) and the GeoJSON boundary exports hold none of the
residents' names, ID numbers, phones or plates, nor a grid worker's name or phone, nor a reporter's
name, although the store holds them all; neither do the map's point layers (counts, never people).
Runs on the fixture database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""
from __future__ import annotations

import io
import json
import zipfile

import openpyxl
from sqlalchemy import update

from dashboard import wall_data
from dashboard.boundary.export import export_regions
from dashboard.briefing import build
from dashboard.briefing import week as weeks
from dashboard.store.schema import event, person, staff, vehicle
from tests.unit.brief_support import WEEK, pdftotext
from tests.unit.kpi_fixtures import DISTRICT, NOW, TZ, seeded

GRID = "370202001001001"
RESIDENT = {"id": 901, "grid_code": GRID, "name": "欧阳青青", "id_number": "370202197707071234",
            "phone": "13655554444", "gender": "F", "birth_year": 1977, "key_class": "elderly_alone"}
CAR = {"id": 902, "grid_code": GRID, "plate": "鲁B7Q9K2", "kind": "car", "lon": 120.33, "lat": 36.06}
WORKER = {"id": 903, "code": "S-EXPORT-1", "name": "钱七妹", "phone": "13712348765", "role": "grid_worker",
          "region_code": GRID}
REPORTER = "孙八哥"
PERSONAL = [RESIDENT["name"], RESIDENT["id_number"], RESIDENT["phone"], CAR["plate"], WORKER["name"],
            WORKER["phone"], REPORTER]


def texts_of(path) -> list[str]:
    """What a reader of the file can read: PDF text, every workbook cell, text files, ZIP members."""
    data = path.read_bytes()
    return list(_texts(path.name, data))


def _texts(name: str, data: bytes):
    if name.endswith(".pdf"):
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "f.pdf"
            p.write_bytes(data)
            text = pdftotext(p, layout=False)
        yield text
        yield "".join(text.split())  # pdftotext may split CJK runs with spaces
    elif name.endswith(".xlsx"):
        wb = openpyxl.load_workbook(io.BytesIO(data))
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                yield "\t".join("" if v is None else str(v) for v in row)
    elif name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                yield from _texts(member, z.read(member))
    elif name.endswith((".png", ".jpg")):
        return
    else:
        yield data.decode("utf-8", errors="replace")


def test_access240_the_briefing_and_the_boundary_exports_carry_no_personal_data(engine, tmp_path):
    seeded(engine)
    with engine.begin() as conn:
        conn.execute(person.insert(), [RESIDENT])
        conn.execute(vehicle.insert(), [CAR])
        conn.execute(staff.insert(), [WORKER])
        conn.execute(update(event).values(reporter=REPORTER))
    b = build.make(engine, DISTRICT, weeks.parse(WEEK), tmp_path / "out", tz=TZ, now=NOW)
    files = sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file())
    kinds = {p.suffix for p in files}
    assert {".pdf", ".xlsx", ".zip"} <= kinds, kinds
    read = {p.name: texts_of(p) for p in files}
    assert any("市南" in t or DISTRICT in t for t in read[b.files["pdf"].name])  # the reader reads the files
    for name, texts in read.items():
        for value in PERSONAL:
            assert not any(value in t for t in texts), (name, value)
    for level in ("district", "street", "community", "grid"):
        out = io.BytesIO()
        export_regions(engine, level, out)
        body = out.getvalue().decode("utf-8")
        assert json.loads(body)["features"] and not [v for v in PERSONAL if v in body], level
    for layer, query in wall_data.POINT_QUERIES.items():  # what walls draw: counts and kinds only
        body = json.dumps(query(engine, DISTRICT), ensure_ascii=False, default=str)
        assert not [v for v in PERSONAL if v in body], layer
