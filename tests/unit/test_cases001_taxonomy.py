"""The taxonomy file: loaded into domain.CATEGORIES unchanged, and refused with file:line on errors."""
from __future__ import annotations

import textwrap

import pytest

from dashboard import domain
from dashboard.cases import taxonomy
from dashboard.cases.taxonomy import Deadline, TaxonomyError

# domain.CATEGORIES as it was written in code before the taxonomy became a file: the file must
# reproduce it exactly (same codes, order, names, tiers and hours), so nothing else changes.
BEFORE = {
    "safety": ("安全隐患", "Safety", 2, 24, {
        "gas": ("燃气泄漏", "Gas left on / leak"), "ebike": ("电动车违规充电", "E-bike charging / fire"),
        "fire_lane": ("消防通道堵塞", "Blocked fire lane"), "hydrant": ("消火栓损坏", "Broken hydrant"),
        "wiring": ("线路私拉乱接", "Overloaded wiring"), "sandwich_panel": ("泡沫夹芯板", "Foam sandwich panels")}),
    "facilities": ("市政设施", "Facilities", 2, 48, {
        "drainage_pump": ("地下室排水泵", "Basement drainage pump"), "elevator": ("电梯故障", "Elevator"),
        "street_light": ("路灯不亮", "Street light"), "manhole": ("井盖缺失", "Manhole / heating-well cover"),
        "storm_grate": ("雨水篦子", "Storm grate"), "road": ("路面破损", "Road surface")}),
    "environment": ("环境卫生", "Environment", 3, 24, {
        "garbage": ("垃圾堆积", "Garbage pile"), "clutter": ("乱堆乱放", "Clutter"),
        "river_waste": ("河道漂浮物", "River floating waste"), "sewage": ("排污口", "Sewage outfall")}),
    "disputes": ("矛盾纠纷", "Disputes", 3, 72, {
        "neighbours": ("邻里纠纷", "Neighbours"), "noise": ("噪音扰民", "Noise"),
        "property": ("物业纠纷", "Property management")}),
    "livelihood": ("民生服务", "Livelihood", 3, 48, {
        "elderly": ("助老服务", "Elderly assistance"), "disabled": ("助残服务", "Disabled assistance"),
        "hardship": ("困难家庭", "Household in need")}),
    "order": ("秩序交通", "Order & traffic", 2, 24, {
        "parking": ("乱停乱放", "Disorderly parking"), "security": ("治安隐患", "Public-security risk")}),
    "petition": ("信访", "Petition", 1, 120, {
        "petition": ("信访诉求", "Petition")}),
}


def test_cases001_domain_categories_come_from_the_file_unchanged():
    assert domain.CATEGORIES == BEFORE
    assert list(domain.CATEGORIES) == list(BEFORE)  # the order seeds and the simulator draw in
    for cat, entry in BEFORE.items():
        assert list(domain.CATEGORIES[cat][4]) == list(entry[4])
    assert domain.label("subcategory", "manhole", "en") == "Manhole / heating-well cover"


def test_cases002_the_file_holds_the_engine_fields():
    tax = taxonomy.load()
    gas = tax.subcategory("gas")
    assert gas.urgent and gas.deadline == Deadline("natural_hours", 2) and gas.tier == 2
    assert tax.subcategory("garbage").deadline == Deadline("working_days", 1)  # 暴露垃圾: 1 working day
    assert tax.subcategory("security").unit_type == "street_police"
    assert tax.subcategory("parking").unit_type == "street_urban"  # the category's default
    assert tax.rule("safety", None) is tax.categories["safety"]
    assert tax.rule("safety", "gas") is gas
    assert all(tax.unit_types[s.unit_type].tier == s.tier for c in tax.categories.values()
               for s in c.subcategories.values())


GOOD = """\
unit_types:
  - {code: community, zh: 社区, en: Community, tier: 3}
  - {code: street_office, zh: 街道, en: Street, tier: 2}
categories:
  - code: environment
    zh: 环境卫生
    en: Environment
    tier: 3
    unit_type: community
    deadline: {natural_hours: 24}
    subcategories:
      - {code: garbage, zh: 垃圾, en: Garbage, deadline: {working_days: 1}}
      - {code: clutter, zh: 乱堆, en: Clutter}
"""


def _write(tmp_path, text):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_cases003_a_small_good_file_loads(tmp_path):
    tax = taxonomy.parse(_write(tmp_path, GOOD))
    assert tax.legacy_categories() == {"environment": ("环境卫生", "Environment", 3, 24,
                                                       {"garbage": ("垃圾", "Garbage"), "clutter": ("乱堆", "Clutter")})}
    assert tax.subcategory("clutter").deadline == Deadline("natural_hours", 24)


# (what is changed in GOOD, the line the error must name, words the message must hold)
BAD = [
    ("    tier: 3\n    unit_type", "    tier: 4\n    unit_type", 8, "unknown tier '4'"),
    ("    tier: 3\n    unit_type", "    tier: two\n    unit_type", 8, "unknown tier"),
    ("deadline: {natural_hours: 24}", "deadline: {natural_hours: -3}", 10, "more than 0"),
    ("deadline: {natural_hours: 24}", "deadline: {natural_hours: soon}", 10, "must be a number"),
    ("deadline: {natural_hours: 24}", "deadline: {fortnights: 2}", 10, "unknown deadline kind 'fortnights'"),
    ("deadline: {natural_hours: 24}", "deadline: {natural_hours: 2, working_days: 1}", 10, "exactly one of"),
    ("{working_days: 1}", "{working_days: 1.5}", 12, "whole number of days"),
    ("code: clutter", "code: garbage", 13, "subcategory code 'garbage' is given twice (first on line 12)"),
    ("en: Clutter}", "en: Clutter, colour: red}", 13, "unknown key 'colour'"),
    ("    en: Environment\n", "    en: Environment\n    en: Env\n", 8, "key 'en' is given twice"),
    ("unit_type: community\n    deadline", "unit_type: street_office\n    deadline", 9, "tier-2 unit"),
    ("unit_type: community\n    deadline", "unit_type: police\n    deadline", 9, "unknown unit_type 'police'"),
    ("  - code: environment", "  - code: Environment", 5, "must be lower case"),
    ("    zh: 环境卫生\n", "", 5, "missing key 'zh'"),
    ("      - {code: clutter, zh: 乱堆, en: Clutter}", "      - {code: clutter, zh: 乱堆, en: Clutter", 14,
     "not valid YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping on line 13)"),
]


@pytest.mark.parametrize("old,new,line,words", BAD, ids=[b[3][:30] for b in BAD])
def test_cases004_a_file_with_an_error_is_refused_naming_the_line(tmp_path, old, new, line, words):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(TaxonomyError) as err:
        taxonomy.parse(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert words in str(err.value)


def test_cases005_a_duplicate_category_code_names_both_lines(tmp_path):
    text = GOOD + GOOD[GOOD.index("  - code: environment"):]
    path = _write(tmp_path, text)
    with pytest.raises(TaxonomyError, match=r":14: category code 'environment' is given twice \(first on line 5\)"):
        taxonomy.parse(path)
