"""The store's tables, as SQLAlchemy Core.

Keys are region codes built on the national administrative code, fixed width
per level, so "inside region X" is a prefix test on the code (see
``dashboard.store.scope``). Geometry is WKB in WGS-84 (EPSG:4326), portable to
SQLite and PostgreSQL alike; every point-like row keeps lon/lat columns.

Columns holding residents' personal data carry ``info={"sensitive": True}``;
``sensitive_columns()`` lists them for masking and export rules.
"""
from __future__ import annotations

from sqlalchemy import (
    Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
    String, Table, Text, UniqueConstraint,
)

from .types import UTCDateTime

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

SENSITIVE = {"sensitive": True}
CODE = 32  # longest region code: 18 digits for a micro-grid, room for other schemes

# --- Territory -------------------------------------------------------------
# level: district | street | community | grid | micro
# kind (grids only): basic, or the dedicated grid's subject: school, hospital,
# market, industrial_park, business_district
region = Table(
    "region", metadata,
    Column("code", String(CODE), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("level", String(16), nullable=False),
    Column("kind", String(32)),
    Column("parent_code", String(CODE), ForeignKey("region.code"), index=True),
    Column("households", Integer, nullable=False, default=0),
    Column("population", Integer, nullable=False, default=0),
    Column("geom", LargeBinary, nullable=False),
    Column("centroid_lon", Float, nullable=False),
    Column("centroid_lat", Float, nullable=False),
    Column("min_lon", Float, nullable=False),
    Column("min_lat", Float, nullable=False),
    Column("max_lon", Float, nullable=False),
    Column("max_lat", Float, nullable=False),
    Column("area_m2", Float, nullable=False, default=0.0),
    Column("source", String(64), nullable=False, default="demo"),
    Column("updated_at", UTCDateTime),
)
Index("ix_region_level_code", region.c.level, region.c.code)

# --- Houses, people, vehicles, things (人、车、房、物) -------------------------
building = Table(
    "building", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(48), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("micro_code", String(CODE), ForeignKey("region.code"), index=True),
    Column("use", String(16), nullable=False),  # residential | commercial | mixed | public
    Column("floors", Integer, nullable=False, default=1),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("households", Integer, nullable=False, default=0),
    Column("population", Integer, nullable=False, default=0),
)

# 重点人群 classes; the single source is dashboard.domain.KEY_POPULATION.
KEY_POPULATION_COLUMNS = (
    "elderly_alone", "empty_nest_elderly", "disabled", "left_behind_children",
    "low_income", "severe_mental_illness", "community_correction",
    "released_prisoners", "drug_rehab", "key_petitioners",
)
resident_summary = Table(
    "resident_summary", metadata,
    Column("building_id", Integer, ForeignKey("building.id"), primary_key=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("population", Integer, nullable=False, default=0),
    Column("households", Integer, nullable=False, default=0),
    Column("registered", Integer, nullable=False, default=0),   # 户籍人口
    Column("floating", Integer, nullable=False, default=0),     # 流动人口
    *(Column(name, Integer, nullable=False, default=0) for name in KEY_POPULATION_COLUMNS),
)

house = Table(
    "house", metadata,
    Column("id", Integer, primary_key=True),
    Column("building_id", Integer, ForeignKey("building.id"), nullable=False, index=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("unit", String(16), nullable=False),          # e.g. 2-301
    Column("use", String(16), nullable=False),           # residential | rental | vacant | shop
    Column("households", Integer, nullable=False, default=0),
    Column("residents", Integer, nullable=False, default=0),
    Column("area_m2", Float, nullable=False, default=0.0),
)

person = Table(
    "person", metadata,
    Column("id", Integer, primary_key=True),
    Column("house_id", Integer, ForeignKey("house.id"), index=True),
    Column("building_id", Integer, ForeignKey("building.id"), index=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("name", String(64), nullable=False, info=SENSITIVE),
    Column("id_number", String(18), nullable=False, info=SENSITIVE),
    Column("phone", String(20), info=SENSITIVE),
    Column("gender", String(1), nullable=False),
    Column("birth_year", Integer, nullable=False),
    Column("key_class", String(32), index=True),  # one of KEY_POPULATION_COLUMNS, or null
)

vehicle = Table(
    "vehicle", metadata,
    Column("id", Integer, primary_key=True),
    Column("plate", String(16), nullable=False, info=SENSITIVE),
    Column("kind", String(16), nullable=False),  # car | ebike | truck
    Column("building_id", Integer, ForeignKey("building.id")),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
)

# 部件: hydrant, manhole_cover, heating_well_cover, street_light, drainage_pump, elevator, camera
facility = Table(
    "facility", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(48), nullable=False, unique=True),
    Column("kind", String(24), nullable=False),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("status", String(16), nullable=False, default="ok"),  # ok | fault
)

# role: grid_head, full_time, professional, part_time, micro_member,
# centre_household, info_officer, volunteer, party_group_leader
staff = Table(
    "staff", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(64), nullable=False, info=SENSITIVE),
    Column("phone", String(20), info=SENSITIVE),
    Column("role", String(24), nullable=False, index=True),
    Column("region_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("department", String(32)),  # professional workers: their agency
    Column("on_duty", Boolean, nullable=False, default=False),
)

# --- The feed: events, hazards, positions, patrols ---------------------------
# Every row written from the feed names the message that wrote it; the
# feed_message ledger makes applying a message idempotent.
event = Table(
    "event", metadata,
    Column("id", String(64), primary_key=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False),
    Column("category", String(32), nullable=False),
    Column("subcategory", String(48)),
    Column("level", Integer, nullable=False),          # 1 district depts, 2 street, 3 community
    Column("urgent", Boolean, nullable=False, default=False),
    Column("state", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("lon", Float),
    Column("lat", Float),
    Column("address", String(200)),
    Column("description", Text),
    Column("reporter", String(64)),
    Column("handler", String(64)),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("reported_at", UTCDateTime, nullable=False),
    Column("registered_at", UTCDateTime),
    Column("dispatched_at", UTCDateTime),
    Column("responded_at", UTCDateTime),
    Column("closed_at", UTCDateTime, index=True),
    Column("deadline_at", UTCDateTime),
    Column("escalations", Integer, nullable=False, default=0),
    Column("reopened", Integer, nullable=False, default=0),
    Column("satisfaction", Integer),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
    # --- the case engine (dashboard/cases; migration 0005) ---
    # the handling unit holding the case now; not indexed: per-unit rates read a period's cases
    # by time anyway, and an index here would take each dispatch at a random place (migration 0003)
    Column("unit_code", String(CODE)),
    Column("feedback_at", UTCDateTime),                  # first 反馈 (handled): 按期处置率
    Column("returns", Integer, nullable=False, default=0),      # 回退 count: 派遣准确率
    Column("extensions", Integer, nullable=False, default=0),   # 延期 count
    Column("supervisions", Integer, nullable=False, default=0),  # 督办 flags (who/why: event_step)
    Column("suspended_at", UTCDateTime),                 # start of the running 挂账, else null
    Column("resume_state", String(16)),                  # the state a 恢复 returns to
    Column("remaining_s", Float),                        # allowance left when suspended (clock seconds)
    Column("deadline_basis", String(16)),                # natural_hours | working_hours | working_days
    Column("allowance_s", Float),                        # the whole allowance, in its clock's seconds
    Column("due_soon_at", UTCDateTime),                  # 即将到期 from here (DUE_SOON_SHARE of the allowance)
    Column("deadline_provisional", Boolean, nullable=False, default=False),  # a year neither calendar knows
    Column("merged_into", String(64)),                   # 合并: the case this one was merged into
    Column("duplicate_of", String(64)),                  # likely duplicate of this open case, flagged on arrival
    # steps the store adds on its own (automatic escalation, a merge recorded on its target): they
    # take negative seq numbers -1, -2, ... so they never collide with the producer's 2, 3, ...
    Column("system_steps", Integer, nullable=False, default=0),
)
# Indexes the feed appends to (migration 0003 says why): open events by state in a scope, and
# events by time in a scope, both covering the wall's per-grid counts; no index takes each new
# report at a random place (grid_code alone did).
Index("ix_event_state_reported", event.c.state, event.c.reported_at, event.c.grid_code, event.c.deadline_at)
Index("ix_event_reported_grid", event.c.reported_at, event.c.grid_code)
# the standard rates' 应结案数: cases whose deadline falls in a period (migration 0005); deadlines
# follow reports by hours to weeks, so this index grows near its end too
Index("ix_event_deadline_grid", event.c.deadline_at, event.c.grid_code)

event_step = Table(
    "event_step", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(64), ForeignKey("event.id"), nullable=False),  # indexed by (event_id, seq)
    Column("seq", Integer, nullable=False),
    Column("step", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64)),
    Column("note", Text),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("payload", Text),   # JSON: what the step carried (unit, deadline, into, level ...); 0005
    UniqueConstraint("event_id", "seq"),
)

hazard = Table(
    "hazard", metadata,
    Column("id", String(64), primary_key=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),   # elevator | gas_pipe | hydrant | water_pipe | ...
    # found | ordered | rectified | passed | closed (dashboard.cases.machine.HAZARD_STATES; 0005
    # renamed the old open -> ordered or found, verified -> closed)
    Column("state", String(16), nullable=False, index=True),
    Column("lon", Float),
    Column("lat", Float),
    Column("description", Text),
    Column("found_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime),
    Column("rectified_at", UTCDateTime),
    Column("reinspected_at", UTCDateTime),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    # --- the hazard cycle (migration 0005) ---
    Column("ordered_at", UTCDateTime),                   # 责令整改 (rectification ordered)
    Column("closed_at", UTCDateTime),                    # 销号
    Column("failures", Integer, nullable=False, default=0),  # failed re-inspections (复查未通过)
    Column("deadline_provisional", Boolean, nullable=False, default=False),
    # --- a counted deadline's basis (migration 0006): the instant its count started and its working
    # seconds, NULL for an instant the message gave; dashboard.cases.recount counts it again
    Column("deadline_from", UTCDateTime),
    Column("allowance_s", Float),
    # 即将到期 (0006): the last DUE_SOON_SHARE of the working time from the latest order to the deadline
    Column("due_soon_at", UTCDateTime),
)

position = Table(  # latest position of each on-duty worker or patrol vehicle
    "position", metadata,
    Column("actor_id", String(64), primary_key=True),
    Column("actor_kind", String(16), nullable=False),  # staff | vehicle
    Column("grid_code", String(CODE), ForeignKey("region.code"), index=True),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

patrol = Table(  # 巡查 check-ins with their checklist
    "patrol", metadata,
    Column("id", String(64), primary_key=True),
    Column("staff_code", String(32), nullable=False, index=True),
    Column("grid_code", String(CODE), ForeignKey("region.code"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("checklist", Text, nullable=False),  # JSON object item -> ok | issue
    Column("issues", Integer, nullable=False, default=0),
)

feed_message = Table(  # idempotency ledger: one row per applied message
    "feed_message", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("stream_id", String(32), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)


# Messages held until their turn: a step whose predecessors have not arrived,
# or a step / hazard update whose event or hazard is not known yet. Held rows
# are in the ledger already (a replay changes nothing); they are applied when
# the gap fills, or dead-lettered after a bounded wait.
feed_pending = Table(
    "feed_pending", metadata,
    Column("message_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),      # message type
    Column("target", String(64), nullable=False),    # event_id or hazard_id
    Column("seq", Integer),                          # event steps only
    Column("stream_id", String(32), nullable=False),
    Column("payload", Text, nullable=False),         # the validated message, JSON
    Column("reason", String(200), nullable=False),
    Column("received_at", UTCDateTime, nullable=False, index=True),
)
Index("ix_feed_pending_target_seq", feed_pending.c.target, feed_pending.c.seq)


# --- The case engine: handling units and automatic escalations (dashboard/cases; migration 0005) ---
# 三级办理: tier 3 communities, tier 2 street offices and their sections, tier 1 district departments.
# unit_type is a code of data/taxonomy.yaml's unit_types; region_code the area the unit serves
# (a community, a street or the district), so "a unit of this tier for this case's place" is a
# prefix test on the case's grid code.
handling_unit = Table(
    "handling_unit", metadata,
    Column("code", String(CODE), primary_key=True),
    Column("name_zh", String(128), nullable=False),
    Column("name_en", String(128), nullable=False),
    Column("tier", Integer, nullable=False),
    Column("unit_type", String(32), nullable=False),
    Column("region_code", String(CODE), nullable=False, index=True),
    Column("parent_code", String(CODE)),
    Column("active", Boolean, nullable=False, default=True),
    Column("source", String(64), nullable=False, default="demo"),
)

# One row per breach escalated automatically: the primary key (case, the deadline it breached)
# is the claim, so however many sweepers run, one wins; message_id is the stream message that
# carries the escalation (deterministic: a re-publish after a crash is deduplicated by the
# consumer's ledger).
case_escalation = Table(
    "case_escalation", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("deadline_at", UTCDateTime, primary_key=True),
    Column("from_level", Integer, nullable=False),
    Column("to_level", Integer, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(64), nullable=False),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("published_at", UTCDateTime),
)


# --- Access: who signs in, which walls may show what, and what happened (dashboard/access) ---
# scope is a region code (or empty: all, for administrators); not a foreign key, so a demo reseed
# (--force) can replace the regions; dashboard.access checks the code when it is set.
access_user = Table(
    "access_user", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),  # argon2id, PHC string
    Column("role", String(32), nullable=False),
    Column("scope", String(CODE), nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_count", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
access_token = Table(  # a wall display's token: only its SHA-256 is kept
    "access_token", metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(128), nullable=False),
    Column("scope", String(CODE), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)
access_audit = Table(  # append-only (triggers refuse UPDATE and DELETE: migration 0004)
    "access_audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(80), nullable=False),   # username, token:<id>, or - (anonymous)
    Column("ip", String(64), nullable=False, default=""),
    Column("action", String(48), nullable=False, index=True),
    Column("details", Text, nullable=False, default="{}"),  # JSON
)


def sensitive_columns() -> dict[str, list[str]]:
    """Table name -> names of the columns holding personal data."""
    out: dict[str, list[str]] = {}
    for table in metadata.sorted_tables:
        names = [c.name for c in table.columns if c.info.get("sensitive")]
        if names:
            out[table.name] = names
    return out
