"""The feed's message contract, version 1 (documented in docs/feed.md).

A message is one JSON object in the field ``m`` of a Redis Stream entry. All
kinds share the envelope (id, type, v, source, occurred_at, location or
region_code, actor); ``type`` selects the body. Validation here is about the
message alone; checks against the store (is the point inside the
jurisdiction, does the region code exist) are the consumer's.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, Union

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator,
)

from ..domain import CATEGORIES, EVENT_STEPS, HAZARD_KINDS, PATROL_CHECKLIST, SOURCES

VERSION = 1
MAX_TEXT = 2000
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(minutes=10)  # a device clock may run this far ahead

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold it; refuse it on every store alike
        raise ValueError("text must not contain NUL (\\u0000)")
    return value


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]
Short = Annotated[str, Field(max_length=64), AfterValidator(_no_nul)]
Source = Literal[tuple(SOURCES)]  # type: ignore[valid-type]


def _no_bool(value):
    if isinstance(value, bool):  # True == 1 in Python; a flag is not a number
        raise ValueError("a number is required, not true/false")
    return value


Level = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=3)]
Score = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=5)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Location(Strict):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "gcj02"] = "wgs84"

    def wgs84(self) -> tuple[float, float]:
        if self.crs == "gcj02":
            from ..geo.coords import gcj02_to_wgs84

            lon, lat = gcj02_to_wgs84(self.lon, self.lat)
            return float(lon), float(lat)
        return self.lon, self.lat


class Actor(Strict):
    kind: Literal["staff", "resident", "operator", "department", "vehicle", "system"]
    id: Id | None = None
    name: Short | None = None


def check_zone(value: datetime | None) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError("time must carry a time zone, e.g. 2026-11-22T09:30:00+08:00")
    return value


_EARLIEST_TS = EARLIEST.timestamp()
_SKEW_S = CLOCK_SKEW.total_seconds()


def check_time(value: datetime) -> datetime:
    # runs for every message the consumer reads: compares POSIX seconds, not aware datetimes
    check_zone(value)
    ts = value.timestamp()
    if ts < _EARLIEST_TS:
        raise ValueError("time is before 2000-01-01")
    if ts > time.time() + _SKEW_S:
        raise ValueError("time is in the future")
    return value


def check_deadline(message) -> None:
    """A deadline is a time zone-aware moment after the message's own time."""
    if message.deadline_at is not None and message.deadline_at <= message.occurred_at:
        raise ValueError("deadline_at must be after occurred_at")


class Envelope(Strict):
    v: Literal[1] = VERSION
    id: Id
    source: Source
    occurred_at: datetime
    location: Location | None = None
    region_code: Annotated[str, Field(pattern=r"^\d{6,24}$")] | None = None
    actor: Actor

    _check_time = field_validator("occurred_at")(check_time)

    @model_validator(mode="after")
    def _placed(self):
        if self.location is None and self.region_code is None:
            raise ValueError("a message needs a location or a region_code")
        return self


class WithDeadline(Envelope):
    """A message that may set a deadline: zone-aware and after the message's own time."""

    deadline_at: datetime | None = None

    _check_deadline_zone = field_validator("deadline_at")(check_zone)

    @model_validator(mode="after")
    def _deadline_after(self):
        check_deadline(self)
        return self


class EventReported(Envelope):
    type: Literal["event.reported"]
    event_id: Id
    category: Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]
    subcategory: Annotated[str, Field(max_length=48)] | None = None
    level: Level | None = None  # default: the category's level
    urgent: bool = False
    description: Text = ""
    address: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)] | None = None

    @model_validator(mode="after")
    def _subcategory_known(self):
        if self.subcategory is not None and self.subcategory not in CATEGORIES[self.category][4]:
            raise ValueError(f"subcategory {self.subcategory!r} is not one of category {self.category!r}")
        return self


class EventStep(WithDeadline):
    """A later step of a case; seq 1 is the report itself, steps count on from 2.

    Whether the step may follow the case's state is the case engine's rule
    (dashboard.cases.machine), checked by the consumer against the store: an illegal step is
    dead-lettered with the machine's reason. ``deadline_at`` sets the deadline on registered,
    dispatched and escalated, and is required (later than the current one) on extended;
    ``note`` is the reason the machine requires on rejected, returned, suspended, reopened,
    extended and supervised; ``into`` names the case a merged one joins; ``unit`` the handling
    unit a dispatch or escalation sends it to (checked against the register of units)."""

    type: Literal["event.step"]
    event_id: Id
    seq: int = Field(ge=2, le=10_000)
    step: Literal[tuple(s for s in EVENT_STEPS if s != "reported")]  # type: ignore[valid-type]
    handler: Short | None = None
    unit: Id | None = None                        # handling unit code (dispatched, escalated)
    level: Level | None = None                    # escalation moves a case up a tier
    satisfaction: Score | None = None
    into: Id | None = None                        # merged: the case it is merged into
    note: Text = ""


class CaseEscalate(Strict):
    """An automatic escalation claimed by the sweep (dashboard/cases/escalation.py): the case's
    deadline ``deadline_at`` passed unhandled. No place or actor: the consumer knows the case."""

    v: Literal[1] = VERSION
    type: Literal["case.escalate"]
    id: Id
    event_id: Id
    deadline_at: datetime                         # the breached deadline (stale if it changed since)
    occurred_at: datetime
    reason: Text = ""
    source: Source = "system"

    _check_time = field_validator("occurred_at")(check_time)
    _check_deadline_zone = field_validator("deadline_at")(check_zone)


WorkingDays = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=250)]


class HazardOrdering(WithDeadline):
    """A message that may order rectification: ``deadline_at``, or ``working_days`` counted on the
    working calendar from the message's time (not both)."""

    working_days: WorkingDays | None = None

    @model_validator(mode="after")
    def _one_deadline(self):
        if self.deadline_at is not None and self.working_days is not None:
            raise ValueError("give deadline_at or working_days, not both")
        return self


class HazardFound(HazardOrdering):
    """Found; with a deadline (deadline_at or working_days) it is also ordered (责令整改) at once."""

    type: Literal["hazard.found"]
    hazard_id: Id
    kind: Literal[tuple(HAZARD_KINDS)]  # type: ignore[valid-type]
    description: Text = ""


class HazardOrdered(HazardOrdering):
    """Rectification ordered (责令整改) for a hazard found without a deadline."""

    type: Literal["hazard.ordered"]
    hazard_id: Id
    note: Text = ""

    @model_validator(mode="after")
    def _has_deadline(self):
        if self.deadline_at is None and self.working_days is None:
            raise ValueError("hazard.ordered needs deadline_at or working_days")
        return self


class HazardDeadline(WithDeadline):
    """延期: a later rectification deadline; the note is the reason (required by the machine)."""

    type: Literal["hazard.deadline"]
    hazard_id: Id
    deadline_at: datetime
    note: Text = ""


class HazardRectified(Envelope):
    type: Literal["hazard.rectified"]
    hazard_id: Id
    note: Text = ""


class HazardReinspected(HazardOrdering):
    """复查: passed, or failed (note = why) back to rectification with a new deadline:
    deadline_at, working_days, or when neither is given the same allowance again."""

    type: Literal["hazard.reinspected"]
    hazard_id: Id
    passed: bool
    note: Text = ""


class HazardClosed(Envelope):
    """销号: a hazard whose re-inspection passed is closed."""

    type: Literal["hazard.closed"]
    hazard_id: Id
    note: Text = ""


class PositionPing(Envelope):
    type: Literal["position"]
    location: Location  # required here

    @model_validator(mode="after")
    def _has_actor_id(self):
        if self.actor.kind not in ("staff", "vehicle") or not self.actor.id:
            raise ValueError("a position ping needs actor.kind staff or vehicle and actor.id")
        return self


class PatrolCheckin(Envelope):
    type: Literal["patrol.checkin"]
    checklist: dict[Literal[PATROL_CHECKLIST], Literal["ok", "issue"]]  # type: ignore[valid-type]
    note: Text = ""

    @model_validator(mode="after")
    def _has_staff(self):
        if self.actor.kind != "staff" or not self.actor.id:
            raise ValueError("a patrol check-in needs actor.kind staff and actor.id")
        return self


Message = Annotated[
    Union[EventReported, EventStep, CaseEscalate, HazardFound, HazardOrdered, HazardDeadline, HazardRectified,
          HazardReinspected, HazardClosed, PositionPing, PatrolCheckin],
    Field(discriminator="type"),
]
MESSAGE_TYPES = ("event.reported", "event.step", "case.escalate", "hazard.found", "hazard.ordered",
                 "hazard.deadline", "hazard.rectified", "hazard.reinspected", "hazard.closed", "position",
                 "patrol.checkin")

_adapter: TypeAdapter = TypeAdapter(Message)
_validator = _adapter.validator  # the consumer validates every message: skip the adapter's wrapper


class InvalidMessage(ValueError):
    """A message that fails the contract; ``reason`` names the fields."""

    def __init__(self, reason: str, errors: list[dict] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


def parse(raw: bytes | str | dict, *, strict: bool | None = None):
    """Validate one message (JSON text or a dict) and return its model.

    JSON text (what the stream carries) is validated strictly: a string is not
    a number and ``true`` is not a level. A dict (an API request body, form
    fields) is validated leniently unless ``strict=True``; ``publish`` dumps the
    model, so what reaches the stream is canonical either way.
    """
    try:
        if isinstance(raw, dict):
            if strict:
                return _adapter.validate_json(json.dumps(raw, default=str), strict=True)
            return _adapter.validate_python(raw)
        return _validator.validate_json(raw, strict=True if strict is None else strict)
    except ValidationError as exc:
        errors = [_error(e) for e in exc.errors(include_url=False)]
        reason = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:5])
        raise InvalidMessage(reason, errors) from None


def _error(e: dict) -> dict:
    if e["type"] == "union_tag_not_found":
        return {"field": "type", "error": "missing; one of " + ", ".join(MESSAGE_TYPES)}
    if e["type"] == "union_tag_invalid":
        return {"field": "type", "error": f"unknown message type {e['ctx'].get('tag')!r}"}
    return {"field": ".".join(str(p) for p in e["loc"]) or "(message)", "error": e["msg"]}


def dump(message) -> str:
    return message.model_dump_json(exclude_none=True)


# Redis keys of the feed.
STREAM = "grid:feed"                 # every message, in arrival order
DEAD_LETTER = "grid:feed:dead"       # invalid messages: reason + original payload
DELTAS = "grid:deltas"               # compact deltas for open screens, after commit
HEALTH = "grid:feed:health"          # hash: lag, rate, dead letters, last message time
GROUP = "store"                      # the consumer group writing the store
