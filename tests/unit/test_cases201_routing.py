"""Routing cases to handling units (dashboard/cases/routing.py, data/routing.yaml): per tier, the
12345 and 110 rules, dispatch refusals, the routing file's errors naming the line."""
from __future__ import annotations

import pytest

from dashboard.cases import routing
from dashboard.cases.routing import Register, RoutingError, Unit, check_dispatch, parse_rules, route
from dashboard.cases.units import seed_demo_units
from tests.unit.feed_support import GRIDS, OTHER_GRID, seed_regions

D, S1, S2 = "370202", "370202001", "370202002"
C1, C2 = "370202001001", "370202002001"
G = GRIDS[0]


def U(code, tier, unit_type, region, active=True):
    return Unit(code, code, code, tier, unit_type, region, None, active)


def register(*extra: Unit) -> Register:
    units = [U("c1", 3, "community", C1), U("c2", 3, "community", C2),
             U("s1", 2, "street_office", S1), U("s1-urban", 2, "street_urban", S1),
             U("s1-police", 2, "street_police", S1), U("s1-safety", 2, "street_safety", S1),
             U("s2", 2, "street_office", S2), U("s2-urban", 2, "street_urban", S2),
             *(U(f"d-{t}", 1, t, D) for t in ("urban_management", "market_regulation", "housing", "fire",
                                              "police", "justice", "ecology", "water", "civil_affairs",
                                              "petition_office")),
             *extra]
    return Register(units)


def r(reg, level, category, sub=None, source="grid_patrol", grid=G, exclude=()):
    return route(reg, level=level, category=category, subcategory=sub, source=source, grid_code=grid,
                 exclude=exclude)


def test_cases201_each_tier_goes_to_a_unit_of_that_tier_serving_the_grid():
    reg = register()
    # tier 3: the community whose code prefixes the grid, whatever the kind
    assert r(reg, 3, "environment", "garbage") == "c1"
    assert r(reg, 3, "safety", "gas") == "c1"
    assert r(reg, 3, "environment", "garbage", grid=OTHER_GRID) == "c2"
    # tier 2: the street's section of the taxonomy's unit type, or its street office
    assert r(reg, 2, "facilities", "street_light") == "s1-urban"
    assert r(reg, 2, "safety", "gas") == "s1-safety"
    assert r(reg, 2, "order", "security") == "s1-police"       # the subcategory's own unit type
    assert r(reg, 2, "disputes", "noise") == "s1"               # kinds: disputes at tier 2 -> street office
    assert r(reg, 2, "facilities", "street_light", grid=OTHER_GRID) == "s2-urban"
    # tier 1: the district department of the kind's unit type
    assert r(reg, 1, "petition", "petition") == "d-petition_office"
    assert r(reg, 1, "environment", "garbage") == "d-urban_management"
    assert r(reg, 1, "environment", "sewage") == "d-ecology"    # the subcategory's kind wins
    assert r(reg, 1, "facilities", "elevator") == "d-market_regulation"
    assert r(reg, 1, "order", "security") == "d-police"
    assert r(reg, 1, "disputes", "neighbours") == "d-justice"
    assert r(reg, 1, "livelihood", "elderly") == "d-civil_affairs"


def test_cases202_escalation_moves_one_tier_up_to_a_unit_there():
    reg = register()
    path = [r(reg, level, "environment", "garbage") for level in (3, 2, 1)]
    assert path == ["c1", "s1-urban", "d-urban_management"]
    assert [reg.get(code).tier for code in path] == [3, 2, 1]
    assert r(reg, 0, "environment", "garbage") is None and r(reg, 4, "environment") is None


def test_cases203_hotline_and_110_rules_keep_to_their_source():
    reg = register()
    # 110 diversions of public-order kinds stay with the police at tiers 2 and 1
    assert r(reg, 2, "order", "parking", source="diversion_110") == "s1-police"
    assert r(reg, 2, "order", "parking", source="grid_patrol") == "s1-urban"
    assert r(reg, 1, "order", "parking", source="diversion_110") == "d-police"
    assert r(reg, 1, "order", "parking", source="hotline_12345") == "d-urban_management"
    assert r(reg, 2, "disputes", "neighbours", source="diversion_110") == "s1-police"
    assert r(reg, 2, "disputes", "noise", source="diversion_110") == "s1"   # the rule names neighbours only
    assert r(reg, 3, "order", "parking", source="diversion_110") == "c1"    # no rule at tier 3
    # 12345: petitions to the petitions bureau, property disputes to housing at the district
    assert r(reg, 1, "petition", "petition", source="hotline_12345") == "d-petition_office"
    assert r(reg, 1, "disputes", "property", source="hotline_12345") == "d-housing"
    assert r(reg, 1, "disputes", "property", source="mini_program") == "d-justice"


def test_cases204_missing_returned_or_inactive_units_fall_back_then_none():
    # street 2 has no police station: a 110 public-order case there goes to its street office
    reg = register()
    assert r(reg, 2, "order", "parking", source="diversion_110", grid=OTHER_GRID) == "s2"
    # the unit that returned the case is passed over
    assert r(reg, 2, "facilities", "road", exclude=("s1-urban",)) == "s1"
    assert r(reg, 2, "facilities", "road", exclude=("s1-urban", "s1")) is None
    # a second unit of the same type serving the same street is the next choice, by code
    reg2 = register(U("s1-urban-b", 2, "street_urban", S1))
    assert r(reg2, 2, "facilities", "road") == "s1-urban"
    assert r(reg2, 2, "facilities", "road", exclude=("s1-urban",)) == "s1-urban-b"
    # the choice does not depend on the order units were loaded in: the most specific area, then the code
    reg4 = Register([U("s1-urban-b", 2, "street_urban", S1), U("d-wide", 2, "street_urban", D),
                     U("s1-urban", 2, "street_urban", S1)])
    assert r(reg4, 2, "facilities", "road") == "s1-urban"
    assert r(reg4, 2, "facilities", "road", exclude=("s1-urban", "s1-urban-b")) == "d-wide"
    # inactive units take nothing; no unit at all -> None
    reg3 = Register([U("c1", 3, "community", C1, active=False), U("c1b", 3, "community", C1)])
    assert r(reg3, 3, "environment", "garbage") == "c1b"
    assert r(reg3, 2, "environment", "garbage") is None
    assert r(Register([]), 3, "environment", "garbage") is None
    assert r(reg, 3, "no_such_category") is None


def test_cases205_check_dispatch_refuses_wrong_tier_and_outside_area():
    reg = register(U("s1-old", 2, "street_office", S1, active=False))
    assert check_dispatch(reg, "s1-urban", level=2, grid_code=G) is None
    assert check_dispatch(reg, "c1", level=3, grid_code=G) is None
    assert check_dispatch(reg, "d-fire", level=1, grid_code=OTHER_GRID) is None
    assert check_dispatch(reg, "s1", level=3, grid_code=G) == "unit s1 is tier 2, the case is tier 3"
    assert check_dispatch(reg, "d-fire", level=2, grid_code=G) == "unit d-fire is tier 1, the case is tier 2"
    assert check_dispatch(reg, "s2", level=2, grid_code=G) == \
        f"unit s2 serves {S2}, not the case's grid {G}"
    assert check_dispatch(reg, "c1", level=3, grid_code=OTHER_GRID) == \
        f"unit c1 serves {C1}, not the case's grid {OTHER_GRID}"
    assert check_dispatch(reg, "nope", level=2, grid_code=G) == "unit nope is not in the register of handling units"
    assert check_dispatch(reg, "s1-old", level=2, grid_code=G) == "unit s1-old is not active"


def test_cases206_register_from_the_store_routes_the_demo_units(engine):
    seed_regions(engine)
    with engine.begin() as conn:
        assert seed_demo_units(conn) > 0
        reg = Register.load(conn)
    assert reg.get(f"{C1}:community").tier == 3
    assert r(reg, 3, "environment", "garbage") == f"{C1}:community"
    assert r(reg, 2, "order", "parking", source="diversion_110") == f"{S1}:street_police"
    assert r(reg, 1, "petition", "petition", source="hotline_12345") == f"{D}:petition_office"
    for level in (3, 2, 1):
        code = r(reg, level, "safety", "gas", grid=OTHER_GRID)
        assert check_dispatch(reg, code, level=level, grid_code=OTHER_GRID) is None
        assert check_dispatch(reg, code, level=level, grid_code=G) is None or level == 1 or \
            check_dispatch(reg, code, level=level, grid_code=G).startswith(f"unit {code} serves")


def test_cases207_the_repository_routing_file_covers_every_kind_at_every_tier():
    rules = routing.load_rules()
    from dashboard.cases import taxonomy

    tax = taxonomy.load()
    for cat in tax.categories.values():
        for sub in (None, *cat.subcategories):
            for tier in (1, 2, 3):
                for source in ("grid_patrol", "hotline_12345", "diversion_110"):
                    ut = rules.unit_type(tier, cat.code, sub, source)
                    assert tax.unit_types[ut].tier == tier, (cat.code, sub, tier, source, ut)


GOOD = """\
defaults:
  3: community
  2: street_office
kinds:
  safety: {1: fire}
  facilities: {1: urban_management}
  environment: {1: urban_management}
  disputes: {1: justice}
  livelihood: {1: civil_affairs}
  order: {1: police}
  petition: {3: community, 2: street_office}
sources:
  diversion_110:
    - {category: order, at: {2: street_police}}
"""


@pytest.mark.parametrize("old, new, line, words", [
    ("  2: street_office\nkinds", "  2: street_office\n  4: community\nkinds", 4, "unknown tier '4'"),
    ("safety: {1: fire}", "safety: {1: fire_brigade}", 5, "unknown unit_type 'fire_brigade'"),
    ("safety: {1: fire}", "safety: {2: fire}", 5, "'fire' is a tier-1 unit, given for tier 2"),
    ("  safety: {1: fire}", "  safety: {1: fire}\n  safety.lava: {1: fire}", 6, "subcategory 'lava'"),
    ("  safety: {1: fire}", "  safety: {1: fire}\n  weather: {1: fire}", 6, "unknown category 'weather'"),
    ("  diversion_110:", "  radio_120:", 13, "unknown source 'radio_120'"),
    ("{category: order, at: {2: street_police}}", "{category: order, at: {2: police}}", 14,
     "'police' is a tier-1 unit, given for tier 2"),
    ("{category: order, at", "{category: order, subcategory: gas, at", 14,
     "subcategory 'gas' is not one of category 'order'"),
    ("{category: order, at", "{category: order, unit: x, at", 14, "unknown key 'unit'"),
    ("  order: {1: police}\n", "", 5, "no unit type for order at tier 1"),
    ("  safety: {1: fire}", "  safety: {1: fire}\n  safety: {1: fire}", 6, "key 'safety' is given twice"),
    ("defaults:", "defaults: [", 3, "not valid YAML"),
])
def test_cases208_routing_file_errors_name_the_line(old, new, line, words):
    assert parse_rules("routing.yaml", GOOD).sources["diversion_110"][0].at == {2: "street_police"}
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(RoutingError) as err:
        parse_rules("routing.yaml", text)
    assert err.value.line == line, str(err.value)
    assert words in str(err.value)
    assert str(err.value).startswith(f"routing.yaml:{line}: ")
