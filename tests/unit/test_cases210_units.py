"""The register of handling units (dashboard/cases/units.py): the demo's units from its regions,
import from CSV or YAML with errors naming the line, the ``units`` command."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard.cases import taxonomy
from dashboard.cases.units import UnitFileError, demo_units, import_units, list_units, read_units, seed_demo_units
from dashboard.store.schema import handling_unit as T
from tests.unit.feed_support import COMMUNITY, DISTRICT, OTHER_STREET, STREET, seed_regions

DATA = Path(__file__).resolve().parents[2] / "data"


def test_cases210_demo_units_cover_three_tiers_from_the_regions(engine):
    seed_regions(engine)
    tax = taxonomy.load()
    tier1 = [u for u in tax.unit_types.values() if u.tier == 1]
    tier2 = [u for u in tax.unit_types.values() if u.tier == 2]
    with engine.begin() as conn:
        n = seed_demo_units(conn)
        rows = list_units(conn)
    # 2 communities, 2 streets x every tier-2 type, the district x every tier-1 type
    assert n == len(rows) == 2 + 2 * len(tier2) + len(tier1)
    by = {r["code"]: r for r in rows}
    assert {r["tier"] for r in rows} == {1, 2, 3}
    assert by[f"{COMMUNITY}:community"]["region_code"] == COMMUNITY
    assert by[f"{COMMUNITY}:community"]["parent_code"] == f"{STREET}:street_office"
    assert by[f"{COMMUNITY}:community"]["name_zh"].endswith("居委会")
    assert by[f"{STREET}:street_police"]["parent_code"] == f"{STREET}:street_office"
    assert by[f"{OTHER_STREET}:street_urban"]["region_code"] == OTHER_STREET
    depts = {r["unit_type"] for r in rows if r["tier"] == 1}
    assert {"urban_management", "market_regulation", "housing", "fire", "police", "justice", "ecology",
            "water", "civil_affairs", "petition_office"} <= depts
    assert all(r["region_code"] == DISTRICT for r in rows if r["tier"] == 1)
    assert all(r["name_zh"] and r["name_en"] and r["source"] == "demo" for r in rows)


def test_cases211_demo_names_read_like_the_real_offices():
    regions = [{"code": "370202", "name": "市南区", "level": "district"},
               {"code": "370202001", "name": "八大峡街道", "level": "street", "parent_code": "370202"},
               {"code": "370202001001", "name": "团岛社区", "level": "community", "parent_code": "370202001"}]
    names = {u.code: u.name_zh for u in demo_units(regions)}
    assert names["370202001001:community"] == "团岛社区居委会"
    assert names["370202001:street_office"] == "八大峡街道办事处"
    assert names["370202001:street_urban"] == "八大峡街道城管执法中队"
    assert names["370202001:street_police"] == "八大峡派出所"
    assert names["370202:urban_management"] == "市南区城市管理局"
    assert names["370202:petition_office"] == "市南区信访局"


def test_cases212_reseeding_replaces_demo_units_and_keeps_imported_ones(engine, tmp_path):
    seed_regions(engine)
    f = tmp_path / "u.csv"
    f.write_text("code,name_zh,name_en,tier,unit_type,region_code\n"
                 f"{STREET}:street_office,自定街道办,Own office,2,street_office,{STREET}\n"
                 f"X1,新的站,New station,2,street_police,{STREET}\n", encoding="utf-8")
    with engine.begin() as conn:
        first = seed_demo_units(conn)
        assert import_units(conn, f) == (1, 1)
        second = seed_demo_units(conn)
        rows = {r["code"]: r for r in list_units(conn)}
    assert second == first - 1            # the imported office keeps its code and its name
    assert rows[f"{STREET}:street_office"]["name_zh"] == "自定街道办"
    assert rows[f"{STREET}:street_office"]["source"] == "import:u.csv"
    assert rows["X1"]["source"] == "import:u.csv"
    assert len(rows) == first + 1


def test_cases213_the_example_files_import(engine):
    seed_regions(engine)
    with engine.begin() as conn:
        seed_demo_units(conn)
    for name in ("units.example.csv", "units.example.yaml"):
        with engine.begin() as conn:
            # the examples name the real district's codes: the tiny test district holds 370202001 too
            added, updated = import_units(conn, DATA / name)
        assert added + updated == 3
    with engine.connect() as conn:
        row = conn.execute(select(T).where(T.c.code == "370202001:street_police")).one()
    assert row.name_zh == "八大峡派出所" and row.tier == 2 and row.source == "import:units.example.yaml"


HEADER = "code,name_zh,name_en,tier,unit_type,region_code,parent_code,active\n"
ROW = f"U1,一,One,2,street_police,{STREET},,true\n"


@pytest.mark.parametrize("rows, line, words", [
    (ROW + f"U2,二,Two,4,street_police,{STREET},,\n", 3, "unknown tier '4'"),
    (ROW + f"U2,二,Two,2,street_fire,{STREET},,\n", 3, "unknown unit_type 'street_fire'"),
    (ROW + f"U2,二,Two,1,street_police,{STREET},,\n", 3, "'street_police' is a tier-2 unit, the unit is tier 1"),
    (ROW + "U2,二,Two,2,street_police,370299001,,\n", 3, "unknown region '370299001'"),
    (ROW + f"U2,二,Two,2,street_police,{COMMUNITY},,\n", 3, "is a community; a tier-2 unit serves a street"),
    (ROW + ROW, 3, "unit U1 is given twice (first on line 2)"),
    (ROW + f"U2,二,Two,2,street_police,{STREET},NOPE,\n", 3, "parent 'NOPE' is not a unit"),
    (ROW + f"U2,二,Two,2,street_police,{STREET},,maybe\n", 3, "active must be true or false"),
    (ROW + f"U 2,二,Two,2,street_police,{STREET},,\n", 3, "code 'U 2' must be"),
    (ROW + f"U2,,Two,2,street_police,{STREET},,\n", 3, "name_zh must be"),
    (ROW + f"U2,二,Two,2,street_police\n", 3, "5 values for 8 columns"),
    (ROW + "\n" + f"U2,二,Two,x,street_police,{STREET},,\n", 4, "unknown tier 'x'"),
])
def test_cases214_csv_errors_name_the_line(engine, tmp_path, rows, line, words):
    seed_regions(engine)
    good = tmp_path / "units.csv"
    good.write_text(HEADER + ROW, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + rows, encoding="utf-8")
    with engine.begin() as conn:
        assert [u.code for u in read_units(good, conn)] == ["U1"]
        with pytest.raises(UnitFileError) as err:
            import_units(conn, bad)
        assert conn.execute(select(T)).all() == []   # all or nothing
    assert err.value.line == line, str(err.value)
    assert words in str(err.value)
    assert str(err.value).startswith(f"{bad}:{line}: ")


@pytest.mark.parametrize("header, line, words", [
    ("code,name_zh,name_en,tier,unit_type\n", 1, "missing column 'region_code'"),
    ("code,name_zh,name_en,tier,unit_type,region_code,colour\n", 1, "unknown column 'colour'"),
])
def test_cases215_csv_header_errors(engine, tmp_path, header, line, words):
    seed_regions(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text(header + ROW, encoding="utf-8")
    with engine.connect() as conn, pytest.raises(UnitFileError) as err:
        read_units(bad, conn)
    assert err.value.line == line and words in str(err.value)


YAML_GOOD = f"""\
units:
  - {{code: U1, name_zh: 一, name_en: One, tier: 2, unit_type: street_police, region_code: "{STREET}"}}
  - code: U2
    name_zh: 二
    name_en: Two
    tier: 3
    unit_type: community
    region_code: "{COMMUNITY}"
    parent_code: U1
"""


@pytest.mark.parametrize("old, new, line, words", [
    ("tier: 3", "tier: 5", 6, "unknown tier '5'"),
    ("unit_type: community", "unit_type: committee", 7, "unknown unit_type 'committee'"),
    (f'region_code: "{COMMUNITY}"', 'region_code: "370202001009"', 8, "unknown region '370202001009'"),
    ("parent_code: U1", "parent_code: U9", 9, "parent 'U9' is not a unit"),
    ("parent_code: U1", "parent: U1", 9, "unknown key 'parent'"),
    ("    name_en: Two\n", "", 3, "missing key 'name_en'"),
    ("code: U2", "code: U1", 3, "unit U1 is given twice (first on line 2)"),
    ("tier: 3", "tier: [3]", 6, "tier must be a single value"),
])
def test_cases216_yaml_errors_name_the_line(engine, tmp_path, old, new, line, words):
    seed_regions(engine)
    good = tmp_path / "units.yaml"
    good.write_text(YAML_GOOD, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    text = YAML_GOOD.replace(old, new, 1)
    assert text != YAML_GOOD
    bad.write_text(text, encoding="utf-8")
    with engine.begin() as conn:
        assert [u.code for u in read_units(good, conn)] == ["U1", "U2"]
        with pytest.raises(UnitFileError) as err:
            import_units(conn, bad)
    assert err.value.line == line, str(err.value)
    assert words in str(err.value)


def test_cases217_units_command_imports_lists_and_refuses_naming_the_line(tmp_path, capsys):
    from dashboard.cli import main

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    from dashboard.store.engine import make_engine, migrate

    eng = make_engine(db)
    migrate(eng)
    seed_regions(eng)
    eng.dispose()
    assert main(["units", "--database-url", db, "seed-demo"]) == 0
    assert "demo units written" in capsys.readouterr().out
    good = tmp_path / "u.csv"
    good.write_text(HEADER + ROW, encoding="utf-8")
    assert main(["units", "--database-url", db, "import", str(good)]) == 0
    assert "1 units added, 0 updated" in capsys.readouterr().out
    assert main(["units", "--database-url", db, "list", "--tier", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("code\ttier\tunit_type")
    assert any(line.startswith("U1\t2\tstreet_police\t") for line in out)
    assert all(line.split("\t")[1] == "2" for line in out[1:])
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + ROW.replace("U1", "U3").replace(",2,", ",7,"), encoding="utf-8")
    assert main(["units", "--database-url", db, "import", str(bad)]) == 2
    assert f"{bad}:2: unit U3: unknown tier '7'" in capsys.readouterr().err
