"""The domain's vocabulary: one place for codes and their zh/en labels.

Codes are stable English identifiers stored in the database and the feed;
labels are what people read. ``label(kind, code, lang)`` looks one up.
"""
from __future__ import annotations

from .cases.taxonomy import load as load_taxonomy

LEVELS = ("district", "street", "community", "grid", "micro")
LEVEL_LABELS = {
    "district": ("区", "District"), "street": ("街道", "Street"),
    "community": ("社区", "Community"), "grid": ("网格", "Grid"), "micro": ("微网格", "Micro-grid"),
}
# Code width per level: national admin code 6/9/12, then grid +3, micro +3.
CODE_WIDTH = {"district": 6, "street": 9, "community": 12, "grid": 15, "micro": 18}

GRID_KINDS = {
    "basic": ("基础网格", "Basic grid"),
    "school": ("学校专属网格", "School"),
    "hospital": ("医院专属网格", "Hospital"),
    "market": ("市场专属网格", "Market"),
    "industrial_park": ("园区专属网格", "Industrial park"),
    "business_district": ("商圈专属网格", "Business district"),
}

# Three-tier handling (三级办理): level 3 community, 2 street, 1 district departments.
EVENT_LEVELS = {1: ("一级·区级部门", "L1 district"), 2: ("二级·街道", "L2 street"), 3: ("三级·社区", "L3 community")}

SOURCES = {
    "grid_patrol": ("网格巡查", "Grid patrol"),
    "mini_program": ("居民小程序", "Resident mini-program"),
    "hotline_12345": ("12345热线", "12345 hotline"),
    "diversion_110": ("110非警务分流", "110 diversion"),
    "whistle": ("吹哨报到", "Whistle"),
    "system": ("系统", "System"),
}

# category -> (zh, en, default level, deadline in plain hours, subcategories {code: (zh, en)}).
# The table is data: data/taxonomy.yaml, checked at start (dashboard/cases/taxonomy.py), which
# also holds what the case engine adds (per-subcategory tier, unit type, working-time deadline).
CATEGORIES = load_taxonomy().legacy_categories()

# Case cycle: the national digital urban management steps. The rules (which step may follow which)
# live in one place, dashboard.cases.machine; these are its codes and labels for the rest of the app.
from .cases.machine import CASE_RULES as _CASE_RULES, CASE_STATES as _CASE_STATES, HAZARD_RULES as _HAZARD_RULES
from .cases.machine import HAZARD_STATES as _HAZARD_STATES  # noqa: E402

EVENT_STEPS = ("reported",) + tuple(r.step for r in _CASE_RULES)
STEP_LABELS = {"reported": ("上报", "Reported"), **{r.step: (r.zh, r.en) for r in _CASE_RULES}}
STEP_LABELS["handling"] = ("处置中", "Handling")
# steps the store adds itself (negative seq): a merge recorded on its target (dashboard/feed/apply.py),
# a deadline counted again once the holiday file knew its year (dashboard/cases/recount.py)
STEP_LABELS["merged_in"] = ("并入", "Merged in")
STEP_LABELS["recounted"] = ("期限重算", "Deadline recounted")
STATE_LABELS = {code: (zh, en) for code, (zh, en, _kind) in _CASE_STATES.items()}
# open: a unit holds the case (it counts on the wall); closed: 结案 / 评价; rejected and merged
# cases are neither (they were never, or are no longer, cases of their own)
OPEN_STATES = tuple(code for code, v in _CASE_STATES.items() if v[2] == "open")
CLOSED_STATES = ("closed", "evaluated")

HAZARD_KINDS = {
    "elevator": ("电梯", "Elevator"), "gas_pipe": ("燃气管道", "Gas pipe"),
    "hydrant": ("消火栓", "Hydrant"), "water_pipe": ("供水管道", "Water pipe"),
    "wiring": ("电气线路", "Wiring"), "fire_lane": ("消防通道", "Fire lane"),
}
HAZARD_STATES = {code: (zh, en) for code, (zh, en, _kind) in _HAZARD_STATES.items()}
HAZARD_STEPS = tuple(r.step for r in _HAZARD_RULES)
# under rectification (整改中): what the wall counts as an open hazard, and overdue past its deadline
HAZARD_OPEN_STATES = ("found", "ordered")
PATROL_CHECKLIST = ("elevator", "gas_pipe", "hydrant", "water_pipe")

KEY_POPULATION = {
    "elderly_alone": ("独居老人", "Elderly living alone"),
    "empty_nest_elderly": ("空巢老人", "Empty-nest elderly"),
    "disabled": ("残疾人", "Disabled"),
    "left_behind_children": ("留守儿童", "Left-behind children"),
    "low_income": ("低保户", "Low-income"),
    "severe_mental_illness": ("严重精神障碍患者", "Severe mental illness"),
    "community_correction": ("社区矫正对象", "Community correction"),
    "released_prisoners": ("刑满释放人员", "Released prisoners"),
    "drug_rehab": ("社区戒毒康复人员", "Drug rehabilitation"),
    "key_petitioners": ("重点信访人员", "Key petitioners"),
}

HOUSE_USES = {"residential": ("自住", "Owner-occupied"), "rental": ("出租", "Rental"),
              "vacant": ("空置", "Vacant"), "shop": ("商铺", "Shop")}
VEHICLE_KINDS = {"car": ("小汽车", "Car"), "ebike": ("电动车", "E-bike"), "truck": ("货车", "Truck"),
                 "patrol": ("巡逻车", "Patrol vehicle")}
FACILITY_KINDS = {
    "hydrant": ("消火栓", "Hydrant"), "manhole_cover": ("井盖", "Manhole cover"),
    "heating_well_cover": ("热力井盖", "Heating-well cover"), "street_light": ("路灯", "Street light"),
    "drainage_pump": ("排水泵", "Drainage pump"), "elevator": ("电梯", "Elevator"), "camera": ("监控探头", "Camera"),
}
STAFF_ROLES = {
    "grid_head": ("网格长", "Grid head"), "full_time": ("专职网格员", "Full-time grid worker"),
    "professional": ("专业网格员", "Professional grid worker"), "part_time": ("兼职网格员", "Part-time grid worker"),
    "micro_member": ("微网格员", "Micro-grid member"), "centre_household": ("中心户", "Centre household"),
    "info_officer": ("信息员", "Information officer"), "volunteer": ("志愿者", "Volunteer"),
    "party_group_leader": ("党小组长", "Party group leader"),
}

_TABLES = {
    "level": LEVEL_LABELS, "grid_kind": GRID_KINDS, "source": SOURCES, "step": STEP_LABELS,
    "hazard": HAZARD_KINDS, "hazard_state": HAZARD_STATES, "state": STATE_LABELS, "key_population": KEY_POPULATION,
    "house": HOUSE_USES, "vehicle": VEHICLE_KINDS, "facility": FACILITY_KINDS, "role": STAFF_ROLES,
    "event_level": EVENT_LEVELS,
}


def label(kind: str, code, lang: str = "zh") -> str:
    i = 0 if lang == "zh" else 1
    if kind == "category":
        entry = CATEGORIES.get(code)
        return entry[i] if entry else str(code)
    if kind == "subcategory":
        for entry in CATEGORIES.values():
            if code in entry[4]:
                return entry[4][code][i]
        return str(code)
    entry = _TABLES[kind].get(code)
    return entry[i] if entry else str(code)
