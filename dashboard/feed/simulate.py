"""A live district for the feed: ``python -m dashboard simulate --rate N --speed S --seed K``.

Two parts:

* ``Generator`` is pure and deterministic: given the district (``World``), a
  seed and a start time it keeps a queue of scheduled actions (a report
  arrives, a case takes its next step, a worker walks on, a vehicle drives,
  a patrol checks in, a hazard is rectified ...) and ``advance(until)``
  returns the contract messages of every action due by then. Random draws
  happen only inside actions, in (time, sequence) order, so the messages do
  not depend on how often ``advance`` is called: the same seed and start give
  the same messages.
* ``Simulator`` drives a generator with the wall clock and XADDs its messages
  (through ``feed.publish``), riding out Redis outages without losing them.

Time: messages carry wall-clock times in the jurisdiction's time zone (the
contract rejects future times, so simulated time cannot run ahead of the
clock). ``speed`` compresses durations: the delays between a case's steps,
deadlines, patrol intervals and walking pace; ``rate`` is the peak number of
new reports per second, shaped by the day's rhythm of the local clock.

Restart: a new simulator picks up open events and hazards from the store (and
steps still in the stream but not yet stored) and keeps advancing them; its
ids carry a run tag derived from the seed and the start time, so a restart
with the same seed never reuses an id.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import redis
import shapely
from sqlalchemy import select

from ..cases import taxonomy
from ..cases.workcalendar import DEFAULT_HOLIDAYS_PATH, DEFAULT_WORK_HOURS, WorkCalendar, load_holidays
from ..domain import CATEGORIES, OPEN_STATES, PATROL_CHECKLIST, label
from ..store.regions import load_regions
from ..store.schema import building, event, hazard, staff
from .contract import MESSAGE_TYPES, STREAM, EventStep, HazardDeadline, HazardReinspected, parse
from .publish import publish_all

log = logging.getLogger(__name__)

# --- The district's habits (demo figures) -------------------------------------------------

# Relative report rate by local hour: quiet at night, peaks mid-morning and mid-afternoon.
DAY_RHYTHM = (0.05, 0.03, 0.02, 0.02, 0.03, 0.06, 0.15, 0.35, 0.65, 0.90, 1.00, 0.85,
              0.55, 0.60, 0.85, 0.95, 0.80, 0.60, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08)
# Petitions (信访, handled at district level) are rare where grids work: 11 of 侯家塘's 12
# communities are 三零 (zero petitions, accidents, criminal cases), and the demo keeps to that over
# the wall's 30 days: at SIM_RATE's ~180 reports a day, a handful of petitions, accidents and
# criminal cases a month in the district's 47 communities (test_feed_sim010).
CATEGORY_MIX = {"safety": 0.17, "facilities": 0.22, "environment": 0.24, "disputes": 0.12,
                "livelihood": 0.12, "order": 0.10, "petition": 0.0002}
SOURCE_MIX = {"grid_patrol": 0.45, "mini_program": 0.25, "hotline_12345": 0.17, "diversion_110": 0.09,
              "whistle": 0.04}
URGENT_P = 0.03
URGENT_P_HIGH = {"gas": 0.25, "ebike": 0.12, "fire_lane": 0.08, "manhole": 0.08}
LEVEL1_P = 0.02          # a few reports go straight to district departments
# ... but a level-1 safety event stands for an accident and a level-1 public-security one for a
# criminal case (docs/kpi.md, 三零): those are rare, and such cases are never escalated to level 1.
RARE_L1_P = {"safety": 0.0012, "security": 0.004}
# --- The case cycle's shares (C4, issue 17 item 8) -------------------------------------------
# One table of how often each turn of the case cycle happens. Every path the generator plans is a
# sequence dashboard.cases.machine accepts (test_cases401 replays them through apply_step and the
# consumer). Where ../shared/DOMAIN.md quotes a figure, the share is set to land near it:
#   结案率 911/972 = 93.72% and 按期结案率 737/972 = 75.82% (a city bulletin), 12345's 按期办理率
#   99.11% / 按期办结率 98.91% / 满意率 94.35% (Wenzhou 2018), Zhenjiang's response rate 100%.
# The rest (rejections, returns, suspensions, extensions, supervision, duplicates) DOMAIN names
# but does not quantify: demo figures, small enough that the bulletin's rates still hold.
REJECT_P = 0.04          # 不予立案 (with a reason): 立案率 ~96%
RETURN_P = 0.05          # 回退 by a unit that is not responsible, then re-dispatched: 派遣准确率 ~95%
SUSPEND_P = 0.02         # 挂账 (the clock stops) and 恢复 a day or three later
EXTEND_P = 0.04          # 延期 with a reason and a later deadline
ESCALATE_P = 0.10        # operator escalations (升级) one tier up; breach escalations are the sweep's
OVERDUE_P = 0.12         # handled after the deadline: with reworks and slow checks, 按期结案率 ~80%
REOPEN_P = 0.05          # 返工 after feedback or verification: 返工率
SUPERVISE_P = 0.03       # 督办: a leader's flag (who, why) on an open case
DUPLICATE_P = 0.03       # a second report of the same 小类 within 50 m and a few hours of an open case
DUPLICATE_FATE = {"merged": 0.5, "rejected": 0.3, "separate": 0.2}  # what the center does with it
DUPLICATE_RADIUS_M = 40.0   # inside the consumer's 50 m (DUPLICATE_RADIUS_M setting)
DUPLICATE_WINDOW_H = 4.0    # "a few hours" after the first report (the consumer looks back 24 h)
SATISFACTION = ((5, 0.60), (4, 0.25), (3, 0.10), (2, 0.03), (1, 0.02))   # 满意率 (3-5 stars) 95%
# Mean delay (simulated minutes) before each step, from the step before it.
STEP_DELAY_MIN = {"registered": 12, "dispatched": 30, "handling": 60, "escalated": 90, "feedback": 240,
                  "verified": 90, "reopened": 30, "closed": 30, "evaluated": 360,
                  "rejected": 20, "returned": 45, "suspended": 90, "resumed": 36 * 60, "extended": 120,
                  "supervised": 180, "merged": 15}
DEPARTMENTS = {"safety": "区应急管理局", "facilities": "区城市管理局", "environment": "区生态环境分局",
               "disputes": "区司法局", "livelihood": "区民政局", "order": "公安市南分局", "petition": "区信访局"}
NOTES = {"registered": "已立案", "dispatched": "已派遣至{handler}", "handling": "{handler}已到场处置",
         "escalated": "本级无法解决，上报{handler}", "feedback": "处置完毕，已反馈", "verified": "核查通过",
         "reopened": "核查未通过，返工处置", "closed": "已结案", "evaluated": "群众评价{satisfaction}星",
         "resumed": "挂账原因消除，恢复处置", "merged": "与{into}为同一问题，合并办理"}
# Reasons for the steps the machine requires one for (note): a pick per step.
REASONS = {
    "rejected": ("不属于网格受理范围", "信息不全，无法核实", "经核实不存在所述问题", "属司法程序处理事项"),
    "duplicate": ("重复上报，已并案 {into} 处理",),
    "returned": ("非本单位职责，申请回退", "派遣单位有误，退回重派", "问题位置不在本辖区"),
    "suspended": ("需协调产权单位，暂时挂账", "涉及多部门，等待联合处置", "待汛期结束后施工"),
    "extended": ("需采购配件，申请延期", "施工量大，申请延期", "需协调业主，申请延期"),
    "supervised": ("群众多次反映，区领导督办", "涉及安全隐患，挂牌督办", "超期风险较高，督办"),
    "reopened": ("核查未通过，返工处置", "群众反映问题仍未解决，返工"),
}
PHRASES = ("，请尽快处理", "，居民反映多次", "，存在安全隐患", "，影响居民出行", "，请相关部门核实", "")
HAZARD_P = 0.02          # per checklist item at a check-in
EXTRA_HAZARD_P = 0.01    # wiring / fire lane found on the walk
HAZARD_DAYS = (3, 15)
HAZARD_LATE_P = 0.2
HAZARD_EXTEND_P = 0.1
REINSPECT_FAIL_P = 0.15
WALK_MPS = 1.2
DRIVE_MPS = 8.0
MOVE_SPEEDUP_CAP = 10.0  # workers do not sprint at speed 60
PING_S = 5.0
VEHICLE_PING_S = 3.0
CHECKIN_MIN = (45, 90)   # simulated minutes between a worker's check-ins
DAY_SHIFT = (8, 18)      # local hours; a tenth of the walkers cover the night
MAX_WALKERS = 150
M_PER_DEG = 111_320.0


class NoDistrict(RuntimeError):
    """The store holds no grids to simulate."""


# --- The district ---------------------------------------------------------------------------

@dataclass
class Grid:
    code: str
    name: str
    geom: object
    community: str
    street: str
    weight: float
    buildings: list[tuple[str, float, float]] = field(default_factory=list)  # (name, lon, lat)
    workers: list[str] = field(default_factory=list)                        # full-time staff codes


@dataclass
class World:
    grids: list[Grid]
    names: dict[str, str]                   # region code -> name (streets, communities)
    streets: dict[str, object]              # street code -> geometry
    on_duty: list[tuple[str, str]]          # (staff code, grid code) of on-duty full-time workers

    @classmethod
    def load(cls, engine) -> "World":
        regions = load_regions(engine, levels=["street", "community", "grid"])
        names = {r["code"]: r["name"] for r in regions}
        streets = {r["code"]: r["geom"] for r in regions if r["level"] == "street"}
        grids = {}
        for r in regions:
            if r["level"] != "grid":
                continue
            geom = r["geom"]
            shapely.prepare(geom)
            community = r["parent_code"] or r["code"][:12]
            grids[r["code"]] = Grid(r["code"], r["name"], geom, community, community[:9],
                                    float(r["population"] or r["households"] or 0) + 100.0)
        if not grids:
            raise NoDistrict("the store holds no grids: run `python -m dashboard seed` first")
        on_duty = []
        with engine.connect() as conn:
            for name, code, lon, lat in conn.execute(
                    select(building.c.name, building.c.grid_code, building.c.lon, building.c.lat)
                    .order_by(building.c.code)):
                if code in grids:
                    grids[code].buildings.append((name, lon, lat))
            for code, region_code, duty in conn.execute(
                    select(staff.c.code, staff.c.region_code, staff.c.on_duty)
                    .where(staff.c.role == "full_time").order_by(staff.c.code)):
                if region_code in grids:
                    grids[region_code].workers.append(code)
                    if duty:
                        on_duty.append((code, region_code))
        return cls(sorted(grids.values(), key=lambda g: g.code), names, streets, on_duty)


@dataclass
class Recovered:
    """Open work found in the store (and the stream) when a simulator starts."""
    events: list[dict] = field(default_factory=list)   # id, state, seq, level, category, urgent, grid_code, lon, lat
    hazards: list[dict] = field(default_factory=list)  # id, state, kind, grid_code, lon, lat, deadline_at

    @classmethod
    def load(cls, engine, r: redis.Redis | None = None, limit: int = 5000, stream_tail: int = 20000) -> "Recovered":
        out = cls()
        with engine.connect() as conn:
            rows = conn.execute(
                select(event.c.id, event.c.state, event.c.last_seq, event.c.level, event.c.category,
                       event.c.subcategory, event.c.reported_at, event.c.suspended_at,
                       event.c.urgent, event.c.grid_code, event.c.lon, event.c.lat, event.c.resume_state,
                       event.c.deadline_at, event.c.feedback_at)
                .where(event.c.state.in_(list(OPEN_STATES))).order_by(event.c.reported_at.desc()).limit(limit)
            ).mappings().all()
            hz = conn.execute(
                select(hazard.c.id, hazard.c.state, hazard.c.kind, hazard.c.grid_code, hazard.c.lon,
                       hazard.c.lat, hazard.c.deadline_at)
                .where(hazard.c.state.in_(list(HAZARD_WORKING))).limit(limit)).mappings().all()
        latest = stream_steps(r, stream_tail) if r is not None else {}
        for row in rows:
            ev = dict(row)
            seq, state = latest.get(ev["id"], (0, None))
            if seq > ev["last_seq"]:  # steps still on the way to the store
                ev["last_seq"], ev["state"] = seq, state
            if ev["state"] in OPEN_STATES:
                out.events.append(ev)
        out.events.sort(key=lambda e: e["id"])
        out.hazards = sorted((dict(h) for h in hz), key=lambda h: h["id"])
        return out


# hazards still being worked on: the cycle's states before closure, and the names the store used
# before migration 0005 (open = found or ordered) while the consumer still writes them
HAZARD_WORKING = ("open", "found", "ordered", "rectified", "passed")


def stream_steps(r: redis.Redis, count: int) -> dict[str, tuple[int, str]]:
    """event id -> (highest seq, its step) among the newest ``count`` stream entries."""
    out: dict[str, tuple[int, str]] = {}
    try:
        entries = r.xrevrange(STREAM, count=count)
    except redis.RedisError:
        return out
    for _sid, fields in entries:
        raw = fields.get(b"m") or fields.get("m")
        try:
            m = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(m, dict) and m.get("type") == "event.step" and isinstance(m.get("seq"), int):
            eid = m.get("event_id")
            if eid and m["seq"] > out.get(eid, (0, None))[0]:
                out[eid] = (m["seq"], m.get("step"))
    return out


# --- Moving things ----------------------------------------------------------------------------

@dataclass
class Mover:
    actor_id: str
    kind: str                 # staff | vehicle
    area: object              # polygon it stays inside
    grid: str | None
    waypoints: list[tuple[float, float]]
    mps: float
    shift: str = "day"        # day | night | always
    pos: tuple[float, float] = (0.0, 0.0)
    target: int = 0
    pinged: bool = False

    def step(self, seconds: float) -> tuple[float, float]:
        """Walk toward the next waypoint; never leaves ``area``."""
        left = self.mps * seconds
        x, y = self.pos
        for _ in range(len(self.waypoints) + 1):
            tx, ty = self.waypoints[self.target]
            kx = M_PER_DEG * math.cos(math.radians(y))
            dx, dy = (tx - x) * kx, (ty - y) * M_PER_DEG
            dist = math.hypot(dx, dy)
            if dist <= left:
                x, y, left = tx, ty, left - dist
                self.target = (self.target + 1) % len(self.waypoints)
                if left <= 0:
                    break
                continue
            f = left / dist
            nx, ny = x + (tx - x) * f, y + (ty - y) * f
            if shapely.contains_xy(self.area, nx, ny):
                x, y = nx, ny
            else:  # the straight line leaves a concave area: go on to the waypoint (inside) at once
                x, y = tx, ty
                self.target = (self.target + 1) % len(self.waypoints)
            break
        self.pos = (x, y)
        return self.pos


def sample_point(rng: random.Random, geom, tries: int = 60) -> tuple[float, float]:
    minx, miny, maxx, maxy = geom.bounds
    for _ in range(tries):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(geom, x, y):
            return x, y
    p = geom.representative_point()
    return p.x, p.y


def local_hour(t: datetime, tz) -> float:
    lt = t.astimezone(tz)
    return lt.hour + lt.minute / 60 + lt.second / 3600


def rhythm(hour: float) -> float:
    h0 = int(hour) % 24
    f = hour - int(hour)
    return DAY_RHYTHM[h0] * (1 - f) + DAY_RHYTHM[(h0 + 1) % 24] * f


def on_shift(shift: str, hour: float) -> bool:
    if shift == "always":
        return True
    day = DAY_SHIFT[0] <= hour < DAY_SHIFT[1]
    return day if shift == "day" else not day


def hours_until_shift(shift: str, hour: float) -> float:
    start = DAY_SHIFT[0] if shift == "day" else DAY_SHIFT[1]
    return (start - hour) % 24


def weighted(rng: random.Random, mix: dict):
    keys = list(mix)
    return rng.choices(keys, weights=[mix[k] for k in keys])[0]


# --- The generator ----------------------------------------------------------------------------

def run_tag(seed: int, start: datetime) -> str:
    return hashlib.sha1(f"{seed}:{start.isoformat()}".encode()).hexdigest()[:6]


class Generator:
    """Deterministic source of feed messages for a district (see module doc)."""

    def __init__(self, world: World, *, seed: int, start: datetime, rate: float = 1.0, speed: float = 1.0,
                 tz: str = "Asia/Shanghai", recovered: Recovered | None = None,
                 max_walkers: int = MAX_WALKERS, ping_s: float = PING_S, vehicle_ping_s: float = VEHICLE_PING_S,
                 positions: bool = True, expect_sweep: bool = False, calendar: WorkCalendar | None = None,
                 patrols_from: datetime | None = None, as_json: bool = False):
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if rate <= 0 or speed <= 0:
            raise ValueError("rate and speed must be positive")
        self.world = world
        self.rng = random.Random(seed)
        # the reports (when, where, what) draw from their own stream: how cases move on (the case
        # rules' turns, their timing) can change without changing which reports arrive
        self.rng_in = random.Random(f"{seed}:reports")
        self.tz = ZoneInfo(tz)
        self.rate = float(rate)
        self.speed = float(speed)
        self.ping_s = ping_s
        self.expect_sweep = expect_sweep  # an escalation sweep runs beside us: see _breach
        # Check-ins before ``patrols_from`` are drawn (the hazards they find, the same random stream,
        # the same message ids) but not sent: the history's older months need no check-in rows (only
        # today's coverage reads them), and they would be two in five of its messages.
        self.patrols_from = patrols_from
        # ``as_json``: messages as the contract's JSON text, not validated here: for a caller that
        # validates them itself on arrival (the history's generating process: its writer parses every
        # one, as the consumer does), so the contract is checked once, not twice. The same messages.
        self.as_json = as_json
        self.intake_closed = False
        self.breaches: list = []  # (case, breached deadline) left to the sweep to escalate (expect_sweep)
        # At speed 1 a case's deadline is the store's own: the taxonomy's allowance on the working
        # calendar from the report (dashboard/cases; the consumer computes it the same way), and the
        # registered step sends none. Compressed time (speed > 1) cannot follow working hours: there
        # the registered step carries a deadline in compressed natural hours, as before.
        self.calendar = calendar if calendar is not None or self.speed != 1.0 else WorkCalendar(
            tz, DEFAULT_WORK_HOURS, load_holidays(DEFAULT_HOLIDAYS_PATH))
        self.taxonomy = taxonomy.load()
        self.vehicle_ping_s = vehicle_ping_s
        self.tag = run_tag(seed, start)
        self.now = start.astimezone(self.tz)
        self._queue: list = []
        self._order = itertools.count()
        self._msg_n = itertools.count(1)
        self._event_n = itertools.count(1)
        self._hazard_n = itertools.count(1)
        self._recent: deque = deque()  # fresh cases of the last hours: what a duplicate repeats
        self._grid_by_code = {g.code: g for g in world.grids}
        self._grid_weights = [g.weight for g in world.grids]
        self.counts: dict[str, int] = defaultdict(int)
        move = min(self.speed, MOVE_SPEEDUP_CAP)
        self.walkers = self._make_walkers(max_walkers, WALK_MPS * move)
        self.vehicles = self._make_vehicles(DRIVE_MPS * move)
        # Everyone on duty reports a position at once, so a screen opened at start-up shows them
        # all; the second ping is spread over one interval so later pings do not come in bursts.
        # Without ``positions`` (a history backfill) workers still check in but nobody walks or drives.
        for i, w in enumerate(self.walkers):
            if positions:
                self._schedule(self.now, "walk", i)
            self._schedule(self.now + self._sim(minutes=self.rng.uniform(5, CHECKIN_MIN[1])), "checkin", i)
        for i in range(len(self.vehicles) if positions else 0):
            self._schedule(self.now, "drive", i)
        self._schedule_arrival()
        for ev in (recovered.events if recovered else []):
            self._resume_case(ev)
        for hz in (recovered.hazards if recovered else []):
            self._resume_hazard(hz)

    # -- scheduling --
    def _sim(self, **kw) -> timedelta:
        """A simulated duration, compressed by speed."""
        # at speed 1 (the history: a year of calls) the division changes nothing: skip it
        return timedelta(**kw) if self.speed == 1.0 else timedelta(**kw) / self.speed

    def _schedule(self, at: datetime, kind: str, payload) -> None:
        heapq.heappush(self._queue, (at, next(self._order), kind, payload))

    def next_time(self) -> datetime | None:
        return self._queue[0][0] if self._queue else None

    def advance(self, until: datetime) -> list:
        """Messages (validated contract models; JSON text ``as_json``) of every action due by ``until``, in
        time order."""
        out: list = []
        while self._queue and self._queue[0][0] <= until:
            at, _n, kind, payload = heapq.heappop(self._queue)
            self.now = at
            getattr(self, "_do_" + kind)(payload, out)
        return out

    # -- building messages --
    def _msg(self, type_: str, actor: dict, *, location=None, region_code=None, at=None, **body):
        m = {"type": type_, "v": 1, "id": f"sim-{self.tag}-{next(self._msg_n):09d}",
             "occurred_at": (at or self.now).isoformat(), "actor": actor, **body}
        m.setdefault("source", "system")
        if location is not None:
            m["location"] = {"lon": round(location[0], 7), "lat": round(location[1], 7), "crs": "wgs84"}
        if region_code is not None:
            m["region_code"] = region_code
        self.counts[type_] += 1
        if self.as_json:
            return json.dumps(m, ensure_ascii=False, separators=(",", ":"))
        return parse(m)  # every message is checked against the contract as it is made

    # -- walkers and vehicles --
    def _make_walkers(self, max_walkers: int, mps: float) -> list[Mover]:
        duty = list(self.world.on_duty)
        if not duty:  # a district without staff rows: one synthetic worker per grid
            duty = [(f"GW{g.code}", g.code) for g in self.world.grids]
        if len(duty) > max_walkers:
            duty = sorted(self.rng.sample(duty, max_walkers))
        night = set(self.rng.sample(range(len(duty)), max(1, len(duty) // 10))) if duty else set()
        out = []
        for i, (code, grid_code) in enumerate(duty):
            g = self._grid_by_code[grid_code]
            points = [(lon, lat) for _n, lon, lat in g.buildings if shapely.contains_xy(g.geom, lon, lat)]
            self.rng.shuffle(points)
            points = points[:6]
            while len(points) < 4:
                points.append(sample_point(self.rng, g.geom))
            mover = Mover(code, "staff", g.geom, g.code, points, mps, "night" if i in night else "day")
            mover.pos = points[-1]
            out.append(mover)
        return out

    def _make_vehicles(self, mps: float) -> list[Mover]:
        by_street: dict[str, list[Grid]] = defaultdict(list)
        for g in self.world.grids:
            by_street[g.street].append(g)
        out = []
        for street, grids in sorted(by_street.items()):
            area = self.world.streets.get(street)
            if area is None:
                area = shapely.union_all([g.geom for g in grids])
            shapely.prepare(area)
            c = area.centroid
            stops = [g.geom.representative_point() for g in grids]
            stops.sort(key=lambda p: math.atan2(p.y - c.y, p.x - c.x))  # a loop around the street
            points = [(p.x, p.y) for p in stops]
            if len(points) < 2:
                points.append(sample_point(self.rng, area))
            mover = Mover(f"PV{street}", "vehicle", area, None, points, mps, "always")
            mover.pos = points[0]
            out.append(mover)
        return out

    def _do_walk(self, i: int, out: list) -> None:
        if self.intake_closed:
            return
        w = self.walkers[i]
        hour = local_hour(self.now, self.tz)
        if not on_shift(w.shift, hour):
            wait = hours_until_shift(w.shift, hour) * 3600 + self.rng.uniform(0, 900)
            self._schedule(self.now + timedelta(seconds=wait), "walk", i)
            return
        pos = w.step(self.ping_s)
        out.append(self._msg("position", {"kind": "staff", "id": w.actor_id}, location=pos, source="grid_patrol"))
        self._schedule(self.now + timedelta(seconds=self._next_ping(w, self.ping_s)), "walk", i)

    def _do_drive(self, i: int, out: list) -> None:
        if self.intake_closed:
            return
        v = self.vehicles[i]
        pos = v.step(self.vehicle_ping_s)
        out.append(self._msg("position", {"kind": "vehicle", "id": v.actor_id}, location=pos, source="system"))
        self._schedule(self.now + timedelta(seconds=self._next_ping(v, self.vehicle_ping_s)), "drive", i)

    def _next_ping(self, m: Mover, interval: float) -> float:
        if m.pinged:
            return interval
        m.pinged = True
        return self.rng.uniform(0.1, 1.0) * interval

    def _do_checkin(self, i: int, out: list) -> None:
        if self.intake_closed:
            return
        w = self.walkers[i]
        nxt = self.now + self._sim(minutes=self.rng.uniform(*CHECKIN_MIN))
        if not on_shift(w.shift, local_hour(self.now, self.tz)):
            self._schedule(nxt, "checkin", i)
            return
        checklist = {item: ("issue" if self.rng.random() < HAZARD_P else "ok") for item in PATROL_CHECKLIST}
        actor = {"kind": "staff", "id": w.actor_id}
        issues = [k for k, v in checklist.items() if v == "issue"]
        if self.patrols_from is not None and self.now < self.patrols_from:
            next(self._msg_n)  # the id it would have had: later messages keep theirs
        else:
            note = ("发现隐患：" + "、".join(label("hazard", k) for k in issues)) if issues else "巡查正常"
            out.append(self._msg("patrol.checkin", actor, location=w.pos, source="grid_patrol",
                                 checklist=checklist, note=note))
        if self.rng.random() < EXTRA_HAZARD_P:
            issues.append(self.rng.choice(["wiring", "fire_lane"]))
        for kind in issues:
            self._found_hazard(kind, w, out)
        self._schedule(nxt, "checkin", i)

    # -- hazards --
    def _found_hazard(self, kind: str, w: Mover, out: list) -> None:
        hid = f"HZ{self.tag}{next(self._hazard_n):06d}"
        days = self.rng.uniform(*HAZARD_DAYS)
        deadline = self.now + self._sim(days=days)
        g = self._grid_by_code[w.grid]
        desc = f"{g.name}巡查发现{label('hazard', kind)}隐患，限期整改"
        out.append(self._msg("hazard.found", {"kind": "staff", "id": w.actor_id}, location=w.pos,
                             source="grid_patrol", hazard_id=hid, kind=kind, description=desc,
                             deadline_at=deadline.isoformat()))
        self._plan_hazard({"id": hid, "state": "open", "kind": kind, "grid_code": w.grid,
                           "lon": w.pos[0], "lat": w.pos[1], "deadline_at": deadline, "worker": w.actor_id},
                          days)

    def _plan_hazard(self, hz: dict, days: float) -> None:
        if hz["state"] == "open":
            if self.rng.random() < HAZARD_EXTEND_P:
                self._schedule(self.now + self._sim(days=days * self.rng.uniform(0.5, 0.9)), "hazard",
                               (hz, "hazard.deadline"))
            late = self.rng.random() < HAZARD_LATE_P
            frac = self.rng.uniform(1.1, 1.6) if late else self.rng.uniform(0.2, 0.95)
            self._schedule(self.now + self._sim(days=days * frac), "hazard", (hz, "hazard.rectified"))
        else:
            self._schedule(self.now + self._sim(hours=self.rng.uniform(4, 48)), "hazard", (hz, "hazard.reinspected"))

    def _hazard_place(self, hz: dict) -> dict:
        if hz.get("lon") is not None and hz.get("lat") is not None:
            return {"location": (hz["lon"], hz["lat"])}
        return {"region_code": hz["grid_code"]}

    def _do_hazard(self, payload, out: list) -> None:
        hz, kind = payload
        actor = {"kind": "staff", "id": hz.get("worker") or self._worker_of(hz["grid_code"])}
        place = self._hazard_place(hz)
        if kind == "hazard.deadline":
            if hz["state"] != "open":  # rectified before the extension was needed
                return
            hz["deadline_at"] = hz["deadline_at"] + self._sim(days=7) if hz.get("deadline_at") else \
                self.now + self._sim(days=7)
            why = {"note": self.rng.choice(HAZARD_EXTEND_REASONS)} if HAZARD_EXTEND_NOTE else {}
            out.append(self._msg(kind, actor, source="grid_patrol", hazard_id=hz["id"],
                                 deadline_at=hz["deadline_at"].isoformat(), **place, **why))
        elif kind == "hazard.rectified":
            hz["state"] = "rectified"
            out.append(self._msg(kind, {"kind": "department", "id": "property"}, source="system",
                                 hazard_id=hz["id"], note=f"{label('hazard', hz['kind'])}已整改", **place))
            self._plan_hazard(hz, 0)
        elif kind == "hazard.reinspected":
            passed = self.rng.random() >= REINSPECT_FAIL_P
            extra = {}
            if not passed:
                days = self.rng.uniform(1, 5)
                if HAZARD_FAIL_DEADLINE:  # failed -> ordered again needs a new deadline (machine.HAZARD_RULES)
                    hz["deadline_at"] = self.now + self._sim(days=days * 1.5)
                    extra["deadline_at"] = hz["deadline_at"].isoformat()
            out.append(self._msg(kind, actor, source="grid_patrol", hazard_id=hz["id"], passed=passed,
                                 note="复查合格" if passed else "复查不合格，继续整改", **place, **extra))
            if not passed:
                hz["state"] = "open"
                self._schedule(self.now + self._sim(days=days), "hazard", (hz, "hazard.rectified"))
            elif HAZARD_CLOSE:  # passed -> closed (销号), by the grid's office a little later
                hz["state"] = "passed"
                self._schedule(self.now + self._sim(hours=self.rng.uniform(1, 24)), "hazard", (hz, "hazard.closed"))
        elif kind == "hazard.closed":
            hz["state"] = "closed"
            out.append(self._msg(kind, actor, source="grid_patrol", hazard_id=hz["id"], note="复查合格，予以销号",
                                 **place))

    def _resume_hazard(self, row: dict) -> None:
        hz = dict(row)
        if hz.get("deadline_at") is not None and hz["deadline_at"].tzinfo is None:
            hz["deadline_at"] = hz["deadline_at"].replace(tzinfo=timezone.utc)
        if hz["state"] in ("open", "found", "ordered"):
            hz["state"] = "open"
            self._schedule(self.now + self._sim(hours=self.rng.uniform(1, 72)), "hazard", (hz, "hazard.rectified"))
        elif hz["state"] == "passed":
            if HAZARD_CLOSE:
                self._schedule(self.now + self._sim(hours=self.rng.uniform(1, 24)), "hazard", (hz, "hazard.closed"))
        else:
            self._schedule(self.now + self._sim(hours=self.rng.uniform(1, 24)), "hazard", (hz, "hazard.reinspected"))

    def _worker_of(self, grid_code: str | None) -> str:
        g = self._grid_by_code.get(grid_code or "")
        if g is not None and g.workers:
            return g.workers[0]
        return f"GW{grid_code or 'x'}"

    # -- reports and cases --
    def _schedule_arrival(self) -> None:
        self._schedule(self.now + timedelta(seconds=self.rng_in.expovariate(self.rate)), "arrival", None)

    def close_intake(self) -> None:
        """No new reports, rounds or walks from now on; cases and hazards in hand go on to their end
        (a backfilled window that must not leave cases open for ever)."""
        self.intake_closed = True

    def _do_arrival(self, _payload, out: list) -> None:
        if self.intake_closed:
            return
        # Thinning: candidates at the peak rate, each kept with the hour's share of it.
        if self.rng_in.random() < rhythm(local_hour(self.now, self.tz)):
            out.append(self._report())
        self._schedule_arrival()

    def _report(self):
        rng = self.rng_in
        original = self._duplicate_target() if rng.random() < DUPLICATE_P else None
        if original is not None:
            g = self._grid_by_code[original["grid_code"]]
            category, sub = original["category"], original["subcategory"]
        else:
            g = rng.choices(self.world.grids, weights=self._grid_weights)[0]
            category = weighted(rng, CATEGORY_MIX)
            sub = rng.choice(sorted(CATEGORIES[category][4]))
        source = weighted(rng, SOURCE_MIX)
        if original is not None:
            # the same problem seen by someone else: a few tens of metres from the first report
            r, angle = rng.uniform(0, DUPLICATE_RADIUS_M), rng.uniform(0, 2 * math.pi)
            lon = original["lon"] + r * math.cos(angle) / (M_PER_DEG * math.cos(math.radians(original["lat"])))
            lat = original["lat"] + r * math.sin(angle) / M_PER_DEG
            if not shapely.contains_xy(g.geom, lon, lat):
                lon, lat = original["lon"], original["lat"]
            address = original["address"]
        elif g.buildings and rng.random() < 0.7:
            bname, lon, lat = rng.choice(g.buildings)
            jlon, jlat = lon + rng.gauss(0, 6e-5), lat + rng.gauss(0, 5e-5)  # around the building, not on one spot
            if shapely.contains_xy(g.geom, jlon, jlat):
                lon, lat = jlon, jlat
            elif not shapely.contains_xy(g.geom, lon, lat):
                lon, lat = sample_point(rng, g.geom)
            address = f"{g.name}{bname}" if not bname.startswith(g.name) else bname
        else:
            lon, lat = sample_point(rng, g.geom)
            address = f"{g.name}附近"
        urgent = rng.random() < URGENT_P_HIGH.get(sub, URGENT_P)
        rare = RARE_L1_P.get(sub, RARE_L1_P.get(category))
        level = 1 if rng.random() < (LEVEL1_P if rare is None else rare) else None
        lag_min = rng.uniform(0, 5) if source == "grid_patrol" else rng.uniform(0, 60)
        occurred = self.now - timedelta(minutes=lag_min)
        if original is not None:  # not before the report it repeats (the consumer looks back from it)
            occurred = max(occurred, original["reported_at"] + timedelta(seconds=1))
        if source == "grid_patrol":
            actor = {"kind": "staff", "id": self._worker_of(g.code)}
        elif source == "mini_program":
            actor = {"kind": "resident", "id": f"wx-{rng.getrandbits(48):012x}"}
        elif source == "hotline_12345":
            actor = {"kind": "operator", "id": f"12345-op-{rng.randint(1, 40):02d}"}
        elif source == "diversion_110":
            actor = {"kind": "department", "id": "110-center"}
        else:
            actor = {"kind": "department", "id": f"whistle-{g.community}"}
        description = f"{address}{label('subcategory', sub)}{rng.choice(PHRASES)}"
        eid = f"EVS{self.tag}{next(self._event_n):06d}"
        body = dict(event_id=eid, category=category, subcategory=sub, urgent=urgent, description=description,
                    address=address)
        if level is not None:
            body["level"] = level
        msg = self._msg("event.reported", actor, location=(lon, lat), at=occurred, source=source, **body)
        # the tier the store gives it: the taxonomy's for the 小类 (dashboard.cases.taxonomy), as the consumer
        case = {"id": eid, "state": "reported", "last_seq": 1,
                "level": level or self.taxonomy.rule(category, sub).tier,
                "category": category, "subcategory": sub, "urgent": urgent, "grid_code": g.code, "lon": lon,
                "lat": lat, "rare": rare is not None, "address": address, "reported_at": occurred}
        if self.calendar is not None:
            case["deadline_at"] = self._deadline(case, occurred)
        if original is not None:
            case["into"] = original["id"]
            fate = weighted(rng, DUPLICATE_FATE)
            case["duplicate"] = "rejected" if fate == "merged" and not CAN_MERGE else fate
        self._plan_case(case, fresh=True)
        self._recent.append(case)
        return msg

    def _deadline(self, case: dict, start: datetime) -> datetime:
        """The taxonomy's allowance from ``start`` on the working calendar (CaseContext.fresh's)."""
        rule = self.taxonomy.rule(case["category"], case.get("subcategory"))
        return max(self.calendar.deadline(start, rule.deadline).at, start).astimezone(self.tz)

    def _working(self, case: dict) -> bool:
        return self.taxonomy.rule(case["category"], case.get("subcategory")).deadline.working

    def _duplicate_target(self) -> dict | None:
        """A recent open case a second report may repeat (same 小类, near it, within hours)."""
        horizon = self.now - timedelta(hours=DUPLICATE_WINDOW_H)
        while self._recent and self._recent[0]["reported_at"] < horizon:
            self._recent.popleft()
        # the first report must still be open and not itself a repeat (a chain would merge into a merged case)
        open_ = [c for c in self._recent if c["state"] in BEFORE_FEEDBACK and "into" not in c
                 and c["path"] and c["path"][0] not in ("rejected", "merged")]
        return self.rng_in.choice(open_[-50:]) if open_ else None

    def _plan_case(self, case: dict, fresh: bool) -> None:
        """Decide the rest of a case's path now, so later draws do not depend on timing. Every path
        is one dashboard.cases.machine accepts (test_cases401 replays them)."""
        rng = self.rng
        dup = case.get("duplicate")
        if not fresh:  # a resumed case: continue from its state
            path = resume_path(case["state"], case.get("resume_state"))
        elif dup == "merged":
            path = ["merged"]
        elif dup == "rejected" or rng.random() < REJECT_P:
            path = ["rejected"]
        else:
            path = ["registered", "dispatched"]
            if rng.random() < RETURN_P:
                path += ["returned", "dispatched"]
            path += ["handling"]
            # an extension before any suspension or escalation: those move the deadline on the store's
            # working clock, and an extension must name a deadline later than the current one
            if rng.random() < EXTEND_P:
                path += ["extended"]
            if rng.random() < SUSPEND_P:
                path += ["suspended", "resumed"]
            if rng.random() < ESCALATE_P and case["level"] > (2 if case.get("rare") else 1):
                path += ["escalated", "handling"]
            path += ["feedback", "verified"]
            if rng.random() < REOPEN_P:
                path += ["reopened", "handling", "feedback", "verified"]
            path += ["closed", "evaluated"]
            if rng.random() < SUPERVISE_P:  # any open state takes the flag: anywhere before closure
                path.insert(rng.randint(1, path.index("closed")), "supervised")
        case["path"] = path
        case["overdue"] = rng.random() < OVERDUE_P
        case["stall"] = rng.random() < 0.03  # a few cases just sit
        self._schedule_step(case)

    def _resume_case(self, row: dict) -> None:
        case = dict(row)
        for k in ("deadline_at", "reported_at", "suspended_at"):
            if case.get(k) is not None and case[k].tzinfo is None:
                case[k] = case[k].replace(tzinfo=timezone.utc)
        if case.get("suspended_at") is None:
            case.pop("suspended_at", None)
        case["fed_back"] = case.pop("feedback_at", None) is not None
        self._plan_case(case, fresh=False)

    def _schedule_step(self, case: dict) -> None:
        if not case["path"]:
            return
        nxt = case["path"][0]
        minutes = STEP_DELAY_MIN[nxt] * self.rng.uniform(0.3, 1.7)
        due = case.get("deadline_at")
        if nxt == "feedback" and self.calendar is not None and due is not None:
            # on time: within what is left; late: past the deadline by a share of the allowance
            left = (due - self.now).total_seconds() / 60
            span = max((due - case.get("reported_at", due)).total_seconds() / 60, 30.0)
            minutes = (left + span * self.rng.uniform(0.1, 0.7) if case["overdue"]
                       else max(left, 10.0) * self.rng.uniform(0.1, 0.8))
            minutes = max(minutes, 1.0)
        elif nxt == "feedback":
            hours = CATEGORIES[case["category"]][3]
            minutes = hours * 60 * (self.rng.uniform(1.1, 1.8) if case["overdue"] else self.rng.uniform(0.1, 0.8))
        if case["stall"] and nxt == "feedback":
            # sits: six times as long on the demo's hours; twice on working days (weeks already)
            minutes *= 6 if self.calendar is None else 2
        if case["urgent"] and nxt not in ("evaluated", "resumed") and not (nxt == "feedback" and self.calendar):
            minutes /= 4
        at = self.now + self._sim(minutes=minutes)
        if self.expect_sweep:
            at = self._breach(case, at)
        self._schedule(at, "step", case)

    def _breach(self, case: dict, at: datetime) -> datetime:
        """With an escalation sweep running (the live demo), a case whose deadline passes before its
        next step while it is held unhandled at tier 2 or 3 is escalated by the sweep, not by us
        (dashboard/cases/escalation.py; the store numbers that step itself): carry on as the sweep
        leaves it, escalated one tier up, so the next step is one the machine takes from there."""
        due = case.get("deadline_at")
        if (due is None or at <= due or case.get("fed_back") or case["level"] <= 1
                or case["state"] not in BREACHABLE):
            return at
        case["level"] -= 1
        case["state"] = "escalated"
        # the store gives the new tier the kind's allowance afresh from the sweep's claim, moments
        # after the breach (unknown without a calendar: then no further breach is modelled)
        case["deadline_at"] = self._deadline(case, due) if self.calendar is not None else None
        self.breaches.append((case["id"], due))
        # the store gave the new tier a fresh deadline we do not track: no extension of it from here
        path = [p for p in case["path"] if not (p == "escalated" and case["level"] <= 1) and p != "extended"]
        # flags (督办) are legal in any open state; the first step that moves the case must be one the
        # machine takes from `escalated`, else the new tier's unit takes it up first
        moving = [p for p in path if p != "supervised"]
        if moving and moving[0] not in ("handling", "dispatched", "returned", "escalated"):
            path.insert(0, "handling")
        case["path"] = path
        return max(at, due + SWEEP_MARGIN)

    def _handler(self, case: dict) -> str:
        g = self._grid_by_code.get(case.get("grid_code") or "")
        community = g.community if g else (case.get("grid_code") or "")[:12]
        if case["level"] >= 3:
            return f"{self.world.names.get(community, '社区')}居委会"[:64]
        if case["level"] == 2:
            return f"{self.world.names.get(community[:9], '街道')}办事处"[:64]
        return DEPARTMENTS.get(case["category"], "区级部门")

    def _do_step(self, case: dict, out: list) -> None:
        rng = self.rng
        step = case["path"].pop(0)
        case["last_seq"] += 1
        body: dict = {"event_id": case["id"], "seq": case["last_seq"], "step": step}
        hours = CATEGORIES[case["category"]][3] / (4 if case["urgent"] else 1)
        if step == "registered" and self.calendar is None:
            case["deadline_at"] = self.now + self._sim(hours=hours)
            body["deadline_at"] = case["deadline_at"].isoformat()
        elif step == "extended":  # a later deadline than the current one, granted before it is needed
            base = max(case.get("deadline_at") or self.now, self.now)
            case["deadline_at"] = base + self._sim(hours=hours * rng.uniform(0.5, 1.0))
            body["deadline_at"] = case["deadline_at"].isoformat()
        if step == "escalated":
            case["level"] = max(1, case["level"] - 1)
            body["level"] = case["level"]
            if self.calendar is not None:  # the new tier gets the kind's allowance afresh (the consumer's rule)
                case["deadline_at"] = self._deadline(case, self.now)
        if step in ("dispatched", "escalated"):
            body["handler"] = self._handler(case)
        if step == "merged":
            body["into"] = case["into"]
        satisfaction = None
        if step == "evaluated":
            satisfaction = rng.choices([s for s, _ in SATISFACTION], weights=[w for _, w in SATISFACTION])[0]
            body["satisfaction"] = satisfaction
        if step == "rejected" and case.get("duplicate") == "rejected":
            body["note"] = rng.choice(REASONS["duplicate"]).format(into=case["into"])
        elif step in REASONS:
            body["note"] = rng.choice(REASONS[step])
        else:
            body["note"] = NOTES[step].format(handler=body.get("handler") or self._handler(case),
                                              satisfaction=satisfaction, into=case.get("into"))
        if step == "feedback":
            case["fed_back"] = True  # the sweep never escalates a handled case
        if step == "suspended":
            case["resume_state"] = case["state"]
            case["suspended_at"] = self.now
            if self.calendar is not None and case.get("deadline_at") is not None:
                # what the store keeps: the clock time left (working time for a working-time kind)
                w = self._working(case)
                case["remaining_s"] = self.calendar.clock(w, case["deadline_at"]) - self.calendar.clock(w, self.now)
        if step == "resumed":
            case.pop("suspended_at", None)
            left = case.pop("remaining_s", None)
            if self.calendar is not None and left is not None:
                # the clock stood still: the deadline is the resumption plus the time that was left
                w = self._working(case)
                case["deadline_at"] = (self.calendar.add(w, self.now, left).at if left >= 0
                                       else self.now + timedelta(seconds=left)).astimezone(self.tz)
        if step == "resumed":
            case["state"] = case.pop("resume_state", None) or "handling"
        elif step not in ("extended", "supervised"):  # flags and clock steps leave the state
            case["state"] = step
        actor = ({"kind": "operator", "id": "command-center"}
                 if step in ("registered", "dispatched", "verified", "closed", "reopened", "rejected", "merged",
                             "resumed", "extended")
                 else {"kind": "operator", "id": "leader-duty"} if step == "supervised"
                 else {"kind": "department", "id": f"L{case['level']}"} if step in ("handling", "feedback",
                                                                                     "escalated", "returned",
                                                                                     "suspended")
                 else {"kind": "resident"})
        place = ({"location": (case["lon"], case["lat"])} if case.get("lon") is not None
                 else {"region_code": case["grid_code"]})
        out.append(self._msg("event.step", actor, source="system", **place, **body))
        self._schedule_step(case)


BASE_PATH = ("registered", "dispatched", "handling", "feedback", "verified", "closed", "evaluated")
# open and far from closure: a repeat reported now is still merged into an open case
# where the escalation sweep claims a case whose deadline passed (held by a unit, not suspended)
BREACHABLE = ("registered", "dispatched", "handling", "escalated", "returned")
SWEEP_MARGIN = timedelta(minutes=10)  # our next step comes this long after the breach: the sweep has run
BEFORE_FEEDBACK = ("reported", "registered", "dispatched", "handling", "escalated", "returned", "suspended")
CAN_MERGE = "into" in EventStep.model_fields  # the contract carries the merge target (C1, issue 17)
HAZARD_FAIL_DEADLINE = "deadline_at" in HazardReinspected.model_fields
HAZARD_EXTEND_NOTE = "note" in HazardDeadline.model_fields      # 延期 needs a reason (machine.HAZARD_RULES)
HAZARD_CLOSE = "hazard.closed" in MESSAGE_TYPES                 # 销号 after a passed re-inspection
HAZARD_EXTEND_REASONS = ("整改需采购材料，申请延期", "需业主配合，申请延期", "施工受天气影响，申请延期")


def resume_path(state: str, resume_state: str | None = None) -> list[str]:
    """The steps left for a case found in ``state`` (``resume_state``: where a suspension returns)."""
    if state == "suspended":
        return ["resumed"] + resume_path(resume_state or "handling")
    if state == "returned":
        return ["dispatched"] + resume_path("dispatched")
    if state in ("escalated", "reopened"):
        return list(BASE_PATH[BASE_PATH.index("handling"):])
    if state == "reported":
        return list(BASE_PATH)
    if state in BASE_PATH:
        return list(BASE_PATH[BASE_PATH.index(state) + 1:])
    return []


# --- Driving it with the clock ------------------------------------------------------------

def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class Simulator:
    """Feeds the stream from a ``Generator`` in step with the (injectable) clock.

    ``Simulator(services, rate, speed, seed)`` or ``Simulator((engine, redis), rate, speed, seed)``.
    """

    def __init__(self, services, rate: float | None = None, speed: float | None = None, seed: int | None = None,
                 *, clock: Callable[[], datetime] = wall_clock, tz: str | None = None,
                 max_walkers: int = MAX_WALKERS, recover: bool = True, tick_s: float = 0.2,
                 expect_sweep: bool | None = None):
        self._own_redis = not isinstance(services, tuple)
        if isinstance(services, tuple):
            self.engine, self.redis = services
            settings = None
        else:
            self.engine, self.redis = services.engine, services.new_redis()
            settings = services.settings
        self.rate = float(rate if rate is not None else (settings.sim_rate if settings else 1.0))
        self.speed = float(speed if speed is not None else (settings.sim_speed if settings else 1.0))
        self.seed = int(seed if seed is not None else (settings.demo_seed if settings else 370202))
        self.tz = tz or (settings.timezone if settings else "Asia/Shanghai")
        # True only where a consumer sweeps for breaches in step with this clock (the live demo:
        # start_in_thread); a test or a backfill that runs its consumer afterwards has no sweep in step
        self.expect_sweep = bool(expect_sweep)
        self.clock = clock
        self.max_walkers = max_walkers
        self.recover = recover
        self.tick_s = tick_s  # publish in small batches rather than waking for every ping
        self.published = 0
        self.dropped = 0
        self.generator: Generator | None = None

    def make_generator(self, start: datetime | None = None) -> Generator:
        world = World.load(self.engine)
        recovered = Recovered.load(self.engine, self.redis) if self.recover else None
        return Generator(world, seed=self.seed, start=start or self.clock(), rate=self.rate, speed=self.speed,
                         tz=self.tz, recovered=recovered, max_walkers=self.max_walkers,
                         expect_sweep=self.expect_sweep)

    def _flush(self, backlog: deque, batch: int = 500) -> None:
        while backlog:
            chunk = [backlog[i] for i in range(min(batch, len(backlog)))]
            publish_all(self.redis, chunk)
            for _ in chunk:
                backlog.popleft()
            self.published += len(chunk)

    def run(self, duration: float | None = None, stop_event: threading.Event | None = None) -> dict:
        """Publish until ``duration`` real seconds pass or ``stop_event`` is set. Returns counts."""
        stop_event = stop_event or threading.Event()
        gen = self.generator = self.make_generator()
        started = time.monotonic()
        backlog: deque = deque()
        backoff = 0.5
        log.info("simulator started", extra={"rate": self.rate, "speed": self.speed, "seed": self.seed,
                                             "tag": gen.tag, "walkers": len(gen.walkers),
                                             "vehicles": len(gen.vehicles)})
        while not stop_event.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            backlog.extend(gen.advance(self.clock()))
            try:
                self._flush(backlog)
                backoff = 0.5
            except redis.RedisError as exc:
                if len(backlog) > 200_000:  # a long outage: shed the oldest position pings, say so
                    kept = deque(m for m in backlog if m.type != "position")
                    self.dropped += len(backlog) - len(kept)
                    backlog = kept
                log.warning("simulator: redis unavailable, holding messages",
                            extra={"error": str(exc), "held": len(backlog), "retry_s": backoff})
                stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            nxt = gen.next_time()
            wait = 0.5 if nxt is None else (nxt - self.clock()).total_seconds()
            if duration is not None:
                wait = min(wait, duration - (time.monotonic() - started))
            wait = min(max(wait, self.tick_s), 0.5)
            if wait > 0:
                stop_event.wait(wait)
        try:
            self._flush(backlog)
        except redis.RedisError:
            log.warning("simulator stopped with unsent messages", extra={"held": len(backlog)})
        finally:
            if self._own_redis:
                self.redis.close()
        stats = {"published": self.published, "dropped": self.dropped, **dict(gen.counts)}
        log.info("simulator stopped", extra=stats)
        return stats


def start_in_thread(services, stop_event: threading.Event) -> threading.Thread:
    """The demo simulator as a daemon thread (dashboard.server)."""
    s = services.settings

    def target():
        while not stop_event.is_set():
            try:
                # the server's consumer sweeps for breaches every ESCALATION_SWEEP_S (0: never)
                Simulator(services, s.sim_rate, s.sim_speed, s.demo_seed,
                          expect_sweep=getattr(s, "escalation_sweep_s", 0) > 0).run(stop_event=stop_event)
                return
            except NoDistrict as exc:
                log.warning("simulator waiting for a district", extra={"error": str(exc)})
                stop_event.wait(5)
            except Exception:  # noqa: BLE001 - the demo feed must not take the server down
                log.exception("simulator failed; restarting in 5 s")
                stop_event.wait(5)

    thread = threading.Thread(target=target, name="simulator", daemon=True)
    thread.start()
    return thread


def cli_simulate(settings, rate: float | None = None, speed: float | None = None, seed: int | None = None,
                 duration: float | None = None) -> int:
    from ..errors import CliError
    from ..services import Services

    if rate is not None and rate <= 0:
        raise CliError("--rate must be positive")
    if speed is not None and speed <= 0:
        raise CliError("--speed must be positive")
    services = Services.open(settings)
    stop = threading.Event()
    try:
        sim = Simulator(services, rate, speed, seed)
        print(f"simulating · rate {sim.rate}/s at peak · speed ×{sim.speed} · seed {sim.seed} "
              f"→ {services.redis_url} {STREAM}", flush=True)
        try:
            stats = sim.run(duration=duration, stop_event=stop)
        except KeyboardInterrupt:
            stop.set()
            stats = {"published": sim.published}
        print(" ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
    except NoDistrict as exc:
        raise CliError(str(exc)) from None
    finally:
        services.close()
    return 0
