"""Provisional deadlines counted again once the holiday file knows their year (dashboard/cases/recount.py):
the consumer does it at start, ``python -m dashboard recount-deadlines`` by hand. The replay gives what
the consumer would have given on the new calendar; an operator's deadline keeps its instant."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from dashboard import cli
from dashboard.cases import recount as R
from dashboard.feed.casework import CaseContext
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DELTAS, GROUP, STREAM
from dashboard.feed.deltas import decode
from dashboard.store.schema import event, event_step, hazard

from . import feed_support as F

CST = F.CST
# the operators' 2027 (a test schedule, not the State Council's): New Year's Day off 1-3 January,
# Saturday 9 January worked
HOLIDAYS_2027 = ("2027:\n  holidays:\n    2027-01-01: 元旦\n    2027-01-02: 元旦\n    2027-01-03: 元旦\n"
                 "  workdays:\n    2027-01-09: 调休\n")
CLOCK = R.CLOCK


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture
def holidays(tmp_path):
    path = tmp_path / "holidays-2027.yaml"
    path.write_text(HOLIDAYS_2027, encoding="utf-8")
    return str(path)


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


report = F.report_at
step = F.step_at


def rows(engine) -> dict:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(event)).mappings()}


def steps_of(engine, eid: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(event_step).where(event_step.c.event_id == eid)
                            .order_by(event_step.c.id)).mappings().all()


def timelines() -> list[dict]:
    """Cases of autumn 2026 whose deadlines reach January 2027, each by another way."""
    ext = t("2027-01-08T17:30:00").isoformat()
    return [
        # an operator's deadline on registration, into 2027
        report("OP", "clutter", "environment", t("2026-12-01T08:50:00")),
        step("OP", 2, "registered", t("2026-12-01T09:00:00"), deadline_at=t("2027-01-04T12:00:00").isoformat()),
        # an extension into 2027, then a suspension and a resumption: the resumed deadline is derived
        report("SU", "road", "facilities", t("2026-11-30T09:00:00")),
        step("SU", 2, "registered", t("2026-11-30T09:30:00")),
        step("SU", 3, "extended", t("2026-12-01T09:00:00"), note="冬季施工", deadline_at=ext),
        step("SU", 4, "suspended", t("2026-12-02T09:00:00"), note="等待审批"),
        step("SU", 5, "resumed", t("2026-12-04T09:00:00")),
        # an extension, then an operator's escalation without a deadline (the new tier's allowance
        # afresh, in 2026: no longer provisional), then another extension into 2027
        report("ES", "garbage", "environment", t("2026-11-30T09:00:00"), level=3),
        step("ES", 2, "registered", t("2026-11-30T09:10:00")),
        step("ES", 3, "extended", t("2026-11-30T10:00:00"), note="等车", deadline_at=ext),
        step("ES", 4, "escalated", t("2026-12-01T10:00:00")),
        step("ES", 5, "extended", t("2026-12-02T09:00:00"), note="等车", deadline_at=t("2027-01-05T10:00:00").isoformat()),
        # closed after its provisional deadline: the rates compare the close with the recounted one
        report("CL", "clutter", "environment", t("2026-11-30T08:40:00")),
        step("CL", 2, "registered", t("2026-11-30T09:00:00")),
        step("CL", 3, "dispatched", t("2026-11-30T09:10:00")),
        step("CL", 4, "handling", t("2026-11-30T09:30:00")),
        step("CL", 5, "extended", t("2026-11-30T10:00:00"), note="材料", deadline_at=t("2027-01-04T09:00:00").isoformat()),
        step("CL", 6, "feedback", t("2026-12-03T10:00:00")),
        step("CL", 7, "verified", t("2026-12-03T11:00:00")),
        step("CL", 8, "closed", t("2026-12-03T12:00:00")),
        # never provisional: left alone
        report("NO", "clutter", "environment", t("2026-11-30T09:00:00")),
    ]


def with_auto_escalation(svc) -> None:
    """Case AE: reported at level 3, escalated by the sweep's message (a system step, seq -1) when its
    first deadline passed, then extended into 2027."""
    F.xadd_all(svc.redis, [report("AE", "garbage", "environment", t("2026-11-30T09:00:00"), level=3),
                           step("AE", 2, "registered", t("2026-11-30T09:05:00")),
                           step("AE", 3, "dispatched", t("2026-11-30T09:10:00"))])
    Consumer(svc, name="c1").run(burst=True)
    first = rows(svc.engine)["AE"]["deadline_at"]
    assert first == t("2026-12-01T09:00:00")
    F.xadd_all(svc.redis, [{"v": 1, "type": "case.escalate", "id": "esc-AE", "event_id": "AE",
                            "deadline_at": first.isoformat(), "occurred_at": t("2026-12-01T10:00:00").isoformat(),
                            "reason": "deadline passed unhandled"},
                           step("AE", 4, "extended", t("2026-12-02T09:00:00"), note="等车",
                                deadline_at=t("2027-01-05T10:00:00").isoformat())])


def test_cases160_the_recount_gives_what_the_consumer_gives_on_the_new_calendar(svc, make_services, tmp_path,
                                                                                holidays):
    F.xadd_all(svc.redis, timelines())
    with_auto_escalation(svc)
    assert F.consume(svc)["dead"] == 0
    before = rows(svc.engine)
    provisional = {i for i, r in before.items() if r["deadline_provisional"]}
    assert provisional == {"OP", "SU", "ES", "CL", "AE"}
    assert [s["step"] for s in steps_of(svc.engine, "AE") if s["seq"] < 0] == ["escalated"]

    # the operators fill in 2027 and restart: the consumer recounts at start
    known = make_services(svc.settings.database_url, svc.settings.redis_url, holidays_file=holidays,
                          escalation_sweep_s=0)
    assert F.consume(known)["dead"] == 0
    after = rows(svc.engine)

    # the oracle: the same messages applied from scratch by a consumer that knew 2027 all along
    oracle = make_services(f"sqlite:///{tmp_path / 'oracle.db'}", svc.settings.redis_url,
                           holidays_file=holidays, escalation_sweep_s=0)
    F.seed_regions(oracle.engine)
    svc.redis.xgroup_destroy(STREAM, GROUP)
    assert F.consume(oracle)["dead"] == 0
    want = rows(oracle.engine)
    assert set(want) == set(after)
    for eid in after:
        got = {k: after[eid][k] for k in CLOCK}
        exp = {k: want[eid][k] for k in CLOCK}
        assert _same_clock(got, exp), (eid, got, exp)
        assert after[eid]["deadline_provisional"] is False
    # the recount moved something in every provisional case, and recorded it; NO was left alone
    for eid in provisional:
        rec = [s for s in steps_of(svc.engine, eid) if s["step"] == R.STEP]
        assert len(rec) == 1 and rec[0]["actor"] == R.ACTOR and rec[0]["seq"] < 0, eid
        assert after[eid]["system_steps"] == before[eid]["system_steps"] + 1
        assert after[eid]["last_seq"] == before[eid]["last_seq"] and after[eid]["state"] == before[eid]["state"]
    assert after["NO"] == before["NO"]
    # an operator's deadlines keep their instants
    assert after["OP"]["deadline_at"] == t("2027-01-04T12:00:00")
    assert after["ES"]["deadline_at"] == t("2027-01-05T10:00:00")
    assert after["CL"]["deadline_at"] == t("2027-01-04T09:00:00") and after["CL"]["state"] == "closed"
    assert after["AE"]["deadline_at"] == t("2027-01-05T10:00:00") and after["AE"]["level"] == 2


def _same_clock(a: dict, b: dict) -> bool:
    for k in CLOCK:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or abs(x - y) > 1e-6:
                return False
        elif x != y:
            return False
    return True


def test_cases161_an_operators_deadline_stays_and_its_due_soon_moves(svc, make_services, holidays):
    # clutter (4 working days) reported Tuesday 1 December 2026 08:50, registered at 09:00 with a
    # deadline of Monday 4 January 2027 12:00. On weekdays (2027 unknown): Dec 1 7 h, 2-31 December
    # 22 days (165 h), Friday 1 January 7.5 h, 4 January 3.5 h: 183 working hours; 即将到期 at the
    # last 20% (36.6 h) before it: Monday 28 December 14:24.
    F.xadd_all(svc.redis, timelines()[:2])
    assert F.consume(svc)["dead"] == 0
    old = rows(svc.engine)["OP"]
    assert old["deadline_at"] == t("2027-01-04T12:00:00") and old["deadline_provisional"] is True
    assert old["allowance_s"] == 183 * 3600 and old["due_soon_at"] == t("2026-12-28T14:24:00")
    # with 2027 known, 1 January is off: 175.5 h; the last 20% (35.1 h) before it: 4 January 3.5 h,
    # 31, 30, 29 and 28 December 7.5 h each, 1.6 h of Friday 25 December: from 15:54 that day
    known = make_services(svc.settings.database_url, svc.settings.redis_url, holidays_file=holidays,
                          escalation_sweep_s=0)
    assert F.consume(known)["dead"] == 0
    new = rows(svc.engine)["OP"]
    assert new["deadline_at"] == t("2027-01-04T12:00:00") and new["deadline_provisional"] is False
    assert new["allowance_s"] == 175.5 * 3600 and new["due_soon_at"] == t("2026-12-25T15:54:00")
    (rec,) = [s for s in steps_of(svc.engine, "OP") if s["step"] == R.STEP]
    assert rec["note"] == ("deadline recounted on the calendar as it now is: 2027-01-04 12:00 -> 2027-01-04 12:00 "
                           "(no longer provisional)")
    payload = json.loads(rec["payload"])
    assert payload["provisional"] is False
    assert datetime.fromisoformat(payload["deadline_at"]) == t("2027-01-04T12:00:00")
    # the screens were told: the case's last delta carries the new 即将到期, no longer provisional
    last = [d for _sid, f in svc.redis.xrange(DELTAS) for d in decode(f[b"d"]) if d.get("id") == "OP"][-1]
    assert last["pv"] is False and datetime.fromisoformat(last["ds"]) == t("2026-12-25T15:54:00")
    # a second start finds nothing left to recount
    assert R.recount(known.engine, CaseContext.from_settings(known.settings)) == []
    assert len([s for s in steps_of(svc.engine, "OP") if s["step"] == R.STEP]) == 1


def test_cases162_without_the_year_nothing_is_recounted(svc):
    F.xadd_all(svc.redis, timelines())
    assert F.consume(svc)["dead"] == 0
    before = rows(svc.engine)
    assert sum(r["deadline_provisional"] for r in before.values()) == 4
    # the consumer's start already ran it (2027 still unknown): nothing moved, no step
    assert F.consume(svc)["dead"] == 0
    assert rows(svc.engine) == before
    assert F.count(svc.engine, event_step, event_step.c.step == R.STEP) == 0
    assert R.recount(svc.engine, CaseContext.from_settings(svc.settings)) == []


def test_cases163_a_case_changed_since_it_was_read_is_not_written(svc, make_services, holidays):
    F.xadd_all(svc.redis, timelines()[:2])
    assert F.consume(svc)["dead"] == 0
    stale = rows(svc.engine)["OP"]
    ctx = CaseContext.from_settings(make_services(svc.settings.database_url, svc.settings.redis_url,
                                                  holidays_file=holidays).settings)
    after = R.replay(ctx, stale, steps_of(svc.engine, "OP"))
    assert after["deadline_provisional"] is False
    # a consumer's batch moves the case on (its version) between the recount's read and its write
    F.xadd_all(svc.redis, [step("OP", 3, "dispatched", t("2026-12-01T10:00:00"))])
    assert F.consume(svc)["dead"] == 0
    with svc.engine.begin() as conn:
        assert R._write(conn, stale, after, datetime.now(CST), CST) is False
    now = rows(svc.engine)["OP"]
    assert now["deadline_provisional"] is True and now["state"] == "dispatched"
    assert F.count(svc.engine, event_step, event_step.c.step == R.STEP) == 0
    # the recount itself reads the case again and recounts it as it now is
    changes = R.recount(svc.engine, ctx)
    assert [c.event_id for c in changes] == ["OP"]
    assert rows(svc.engine)["OP"]["deadline_provisional"] is False


def recount_command(svc, holidays, monkeypatch, capsys):
    """``python -m dashboard recount-deadlines [args]`` on ``svc``'s store with the 2027 file (None:
    the default calendar), no Redis: a function running it (exit 0 asserted) and returning what it
    printed."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    if holidays is not None:
        monkeypatch.setenv("HOLIDAYS_FILE", holidays)

    def run(*args: str) -> str:
        assert cli.main(["recount-deadlines", *args, "--database-url", svc.settings.database_url]) == 0
        return capsys.readouterr().out
    return run


def test_cases164_the_command_lists_then_writes(svc, holidays, monkeypatch, capsys):
    F.xadd_all(svc.redis, timelines()[:2])
    assert F.consume(svc)["dead"] == 0
    command = recount_command(svc, holidays, monkeypatch, capsys)
    out = command("--dry-run")
    assert "OP\tregistered\t2027-01-04T12:00+08:00\t->\t2027-01-04T12:00+08:00\tfinal" in out
    assert "1 deadlines would be recounted (dry run: nothing written); 0 still provisional" in out
    assert rows(svc.engine)["OP"]["deadline_provisional"] is True
    assert "1 deadlines recounted; 0 still provisional" in command()
    assert rows(svc.engine)["OP"]["deadline_provisional"] is False
    # a holiday file with a mistake is refused, naming its line
    bad = holidays.replace(".yaml", "-bad.yaml")
    with open(bad, "w", encoding="utf-8") as f:
        f.write("2027:\n  holidays:\n    2027-13-01: 元旦\n")
    monkeypatch.setenv("HOLIDAYS_FILE", bad)
    assert cli.main(["recount-deadlines", "--database-url", svc.settings.database_url]) == 2
    err = capsys.readouterr().err
    assert "holidays-2027-bad.yaml:3:" in err and "2027-13-01" in err


def test_cases165_a_suspension_over_new_years_day_is_counted_again(tmp_path, holidays):
    # The replay on its own (no feed: these moments are later than the suite may run). Foam sandwich
    # panels (15 working days) reported Monday 21 December 2026 10:00; suspended Thursday 31 December
    # 10:00; resumed Monday 4 January 2027 10:00, the resumption's own count in its step's payload.
    from dashboard.cases.workcalendar import WorkCalendar, load_holidays, parse_holidays

    weekdays = CaseContext(WorkCalendar("Asia/Shanghai", overrides=load_holidays(tmp_path / "none.yaml")))
    known = CaseContext(WorkCalendar("Asia/Shanghai", overrides=parse_holidays(holidays)))
    row = {"category": "safety", "subcategory": "sandwich_panel", "reported_at": t("2026-12-21T10:00:00")}
    steps = [{"seq": 2, "step": "registered", "at": t("2026-12-21T10:30:00"), "payload": None},
             {"seq": 3, "step": "suspended", "at": t("2026-12-31T10:00:00"), "payload": '{"remaining_s":189000.0}'},
             {"seq": 4, "step": "resumed", "at": t("2027-01-04T10:00:00"),
              "payload": json.dumps({"deadline_at": "2027-01-13T02:00:00+00:00"})}]
    # on weekdays: 52.5 working hours were left at the suspension (31 December 6 h, 1 January 7.5 h,
    # 4-8 January 37.5 h, 11 January 1.5 h); from 4 January 10:00 they run to 13 January 10:00
    old = R.replay(weekdays, row, steps)
    assert old["deadline_at"] == t("2027-01-13T10:00:00") and old["deadline_provisional"] is True
    assert old["remaining_s"] is None and old["allowance_s"] == 15 * 7.5 * 3600
    # 2027 known: 1 January is off and Saturday 9 January worked. Still 52.5 h left (the 1st out, the
    # 9th in), but spent from 4 January they now end on 12 January 10:00: the 1st was inside the
    # suspension, the 9th is not
    new = R.replay(known, row, steps)
    assert new["deadline_at"] == t("2027-01-12T10:00:00") and new["deadline_provisional"] is False
    # a step the recount added itself, and a merge recorded on the case, change nothing
    extra = steps + [{"seq": -1, "step": "merged_in", "at": t("2027-01-05T09:00:00"), "payload": '{"from":"X"}'},
                     {"seq": -2, "step": R.STEP, "at": t("2027-01-05T09:00:00"),
                      "payload": json.dumps({"deadline_at": "2027-02-01T00:00:00+00:00"})}]
    assert R.replay(known, row, extra) == new
    # an automatic escalation (a system step) gives the new tier its allowance afresh on the calendar
    # as it now is; the deadline in its payload was counted on weekdays. Garbage (1 working day),
    # escalated by the sweep on Thursday 31 December 10:00: on weekdays Friday 1 January 10:00, with
    # 2027 known Monday 4 January 10:00
    row = {"category": "environment", "subcategory": "garbage", "reported_at": t("2026-12-28T10:00:00")}
    steps = [{"seq": 2, "step": "registered", "at": t("2026-12-28T10:05:00"), "payload": None},
             {"seq": -1, "step": "escalated", "at": t("2026-12-31T10:00:00"),
              "payload": json.dumps({"level": 2, "deadline_at": "2027-01-01T02:00:00+00:00", "unit": None})}]
    assert R.replay(weekdays, row, steps)["deadline_at"] == t("2027-01-01T10:00:00")
    new = R.replay(known, row, steps)
    assert new["deadline_at"] == t("2027-01-04T10:00:00") and new["deadline_provisional"] is False


def test_cases166_the_consumer_recounts_once_a_start_and_again_after_a_failure(svc, monkeypatch):
    calls = []
    real = R.recount

    def counted(*args, **kw):
        calls.append(kw)
        if fail and len(calls) == 1:
            raise RuntimeError("the store went away")
        return real(*args, **kw)

    monkeypatch.setattr(R, "recount", counted)
    fail = False
    F.xadd_all(svc.redis, timelines()[:2])
    assert F.consume(svc)["applied"] == 2   # a batch, then the last pass's forced housekeeping
    assert len(calls) == 1 and calls[0]["redis"] is not None
    # a failed recount is tried again (here by the last pass), not given up
    calls.clear()
    fail = True
    F.xadd_all(svc.redis, [step("OP", 3, "dispatched", t("2026-12-01T10:00:00"))])
    assert F.consume(svc)["applied"] == 1
    assert len(calls) == 2


# --- hazards: a rectification deadline counted on the working calendar -------------------------

def hz_msg(mid: str, type_: str, hid: str, when: str, **kw) -> dict:
    return F.envelope(mid, type=type_, hazard_id=hid, region_code=F.GRIDS[1], occurred_at=t(when).isoformat(), **kw)


def hz_found(hid: str, when: str, **kw) -> dict:
    return hz_msg(f"{hid}-f", "hazard.found", hid, when, kind="gas_pipe", description="燃气立管锈蚀", **kw)


def hazard_timelines() -> list[dict]:
    """Hazards of autumn 2026 whose rectification deadlines reach January 2027, each by another way."""
    return [
        # an order of 25 working days: on weekdays Friday 1 January is the 24th, Monday 4th the 25th
        hz_found("HA", "2026-11-30T09:00:00", working_days=25),
        # 22 working days (30 December, in 2026), rectified, failed on 4 December without a new
        # deadline: the same 165 h again, through 1 January
        hz_found("HB", "2026-11-30T09:00:00", working_days=22),
        hz_msg("HB-r", "hazard.rectified", "HB", "2026-12-01T10:00:00"),
        hz_msg("HB-x", "hazard.reinspected", "HB", "2026-12-04T09:00:00", passed=False, note="仍有锈蚀"),
        # found without a deadline, ordered on 1 December 10:00 with 24 working days
        hz_found("HD", "2026-11-30T09:00:00"),
        hz_msg("HD-o", "hazard.ordered", "HD", "2026-12-01T10:00:00", working_days=24),
        # an instant in 2027 the message gave: kept, its 即将到期 (counted back to 2026) provisional
        hz_found("HI", "2026-11-30T09:00:00", deadline_at=t("2027-01-04T17:30:00").isoformat()),
    ]


def hazard_rows(engine) -> dict:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(hazard)).mappings()}


HZ_CLOCK = ("deadline_at", "due_soon_at", "deadline_provisional", "deadline_from", "allowance_s", "state", "failures")


def test_cases167_hazard_deadlines_counted_again(svc, make_services, tmp_path, holidays):
    F.xadd_all(svc.redis, hazard_timelines())
    assert F.consume(svc)["dead"] == 0, F.dead_letters(svc.redis)
    before = hazard_rows(svc.engine)
    assert {i for i, h in before.items() if h["deadline_provisional"]} == {"HA", "HB", "HD", "HI"}
    assert before["HA"]["deadline_at"] == t("2027-01-04T09:00:00")
    assert (before["HB"]["state"], before["HB"]["failures"]) == ("ordered", 1)
    assert before["HB"]["deadline_at"] == t("2027-01-05T09:00:00")
    assert before["HB"]["deadline_from"] == t("2026-12-04T09:00:00") and before["HB"]["allowance_s"] == 165 * 3600
    assert before["HD"]["deadline_at"] == t("2027-01-04T10:00:00")
    assert before["HI"]["deadline_from"] is None and before["HI"]["allowance_s"] is None
    # HI, ordered 30 November 09:00: 194.5 working hours on weekdays (that day 7 h, 23 days of
    # December, 1 and 4 January 7.5 h each); the last 38.9 h: 4 and 1 January, 31, 30 and 29 December,
    # then 1.4 h of 28 December: from 16:06
    assert before["HI"]["due_soon_at"] == t("2026-12-28T16:06:00")

    # the operators fill in 2027 (1-3 January off) and restart: the consumer recounts at start
    known = make_services(svc.settings.database_url, svc.settings.redis_url, holidays_file=holidays,
                          escalation_sweep_s=0)
    assert F.consume(known)["dead"] == 0
    after = hazard_rows(svc.engine)
    assert after["HA"]["deadline_at"] == t("2027-01-05T09:00:00")
    assert after["HB"]["deadline_at"] == t("2027-01-06T09:00:00")
    assert after["HD"]["deadline_at"] == t("2027-01-05T10:00:00")
    assert not any(h["deadline_provisional"] for h in after.values())
    # (their 即将到期 is recounted too, and equals the oracle's below: here it falls in 2026 either way)
    assert after["HA"]["due_soon_at"] == t("2026-12-28T09:00:00")
    # HI keeps its instant; 187 h with 1 January off, the last 37.4 h: 4 January, 31 to 29 December,
    # then 7.4 h of 28 December: from 08:36
    assert after["HI"]["deadline_at"] == before["HI"]["deadline_at"]
    assert after["HI"]["due_soon_at"] == t("2026-12-28T08:36:00")
    for hid in ("HA", "HB", "HD", "HI"):   # the version the consumer checks moved on
        assert after[hid]["last_seq"] == before[hid]["last_seq"] + 1

    # the oracle: the same messages applied by a consumer that knew 2027 all along
    oracle = make_services(f"sqlite:///{tmp_path / 'oracle.db'}", svc.settings.redis_url,
                           holidays_file=holidays, escalation_sweep_s=0)
    F.seed_regions(oracle.engine)
    oracle.redis.delete(STREAM)
    F.xadd_all(oracle.redis, hazard_timelines())
    assert F.consume(oracle)["dead"] == 0
    truth = hazard_rows(oracle.engine)
    for hid in truth:
        assert {k: after[hid][k] for k in HZ_CLOCK} == {k: truth[hid][k] for k in HZ_CLOCK}, hid

    # the screens were told
    last = [d for _sid, f in svc.redis.xrange(DELTAS) for d in decode(f[b"d"])
            if d.get("k") == "hazard" and d.get("id") == "HA"][-1]
    assert last["pv"] is False and datetime.fromisoformat(last["dl"]) == t("2027-01-05T09:00:00")
    # a second start finds nothing left
    assert R.recount_hazards(known.engine, CaseContext.from_settings(known.settings)) == []


def test_cases168_a_hazard_without_its_count_stays_provisional_and_the_command_says_so(svc, holidays, monkeypatch,
                                                                                        capsys):
    F.xadd_all(svc.redis, hazard_timelines()[:1] + [hz_found("HL", "2026-11-30T09:00:00", working_days=25)])
    assert F.consume(svc)["dead"] == 0
    with svc.engine.begin() as conn:   # HL as stored before migration 0006: no basis, no 即将到期
        conn.execute(sa.update(hazard).where(hazard.c.id == "HL").values(deadline_from=None, allowance_s=None,
                                                                          due_soon_at=None))
    command = recount_command(svc, holidays, monkeypatch, capsys)
    out = command("--dry-run")
    assert "hazard HA\tordered\t2027-01-04T09:00+08:00\t->\t2027-01-05T09:00+08:00\tfinal" in out
    assert "1 hazard deadlines would be recounted (dry run: nothing written); 1 still provisional" in out
    assert hazard_rows(svc.engine)["HA"]["deadline_provisional"] is True
    assert "1 hazard deadlines recounted; 1 still provisional" in command()
    rows_ = hazard_rows(svc.engine)
    assert rows_["HA"]["deadline_provisional"] is False and rows_["HA"]["deadline_at"] == t("2027-01-05T09:00:00")
    assert rows_["HL"]["deadline_provisional"] is True and rows_["HL"]["deadline_at"] == t("2027-01-04T09:00:00")


def test_cases169_a_hazard_changed_since_it_was_read_is_not_written(svc, make_services, holidays):
    F.xadd_all(svc.redis, hazard_timelines()[:1])
    assert F.consume(svc)["dead"] == 0
    stale = hazard_rows(svc.engine)["HA"]
    # a consumer's batch moves the hazard on (its version) between the recount's read and its write
    F.xadd_all(svc.redis, [hz_msg("HA-r", "hazard.rectified", "HA", "2026-12-02T10:00:00")])
    assert F.consume(svc)["dead"] == 0
    after = {"deadline_at": t("2027-01-05T09:00:00"), "deadline_provisional": False}
    with svc.engine.begin() as conn:
        assert R._write_hazard(conn, stale, after, datetime.now(CST)) is False
    now = hazard_rows(svc.engine)["HA"]
    assert now["deadline_provisional"] is True and now["state"] == "rectified"
    # the recount itself reads it again and counts it as it now is
    ctx = CaseContext.from_settings(make_services(svc.settings.database_url, svc.settings.redis_url,
                                                  holidays_file=holidays).settings)
    assert [(c.hazard_id, c.state) for c in R.recount_hazards(svc.engine, ctx)] == [("HA", "rectified")]
    now = hazard_rows(svc.engine)["HA"]
    assert now["deadline_provisional"] is False and now["deadline_at"] == t("2027-01-05T09:00:00")
    assert now["last_seq"] == stale["last_seq"] + 2


def test_cases170_hazards_stored_before_their_due_soon_was_kept_get_one_at_start(svc, monkeypatch, capsys):
    def legacy(hid: str, state: str, provisional: bool = False, ordered: bool = True) -> dict:
        # as migration 0006 leaves a row: a deadline, no basis, no 即将到期
        return {"id": hid, "grid_code": F.GRIDS[1], "kind": "gas_pipe", "state": state,
                "found_at": t("2026-11-02T09:00:00"), "ordered_at": t("2026-11-02T09:00:00") if ordered else None,
                "deadline_at": t("2026-11-04T09:00:00"), "deadline_provisional": provisional,
                "last_seq": 3, "updated_at": t("2026-11-02T09:00:00")}
    with svc.engine.begin() as conn:
        conn.execute(hazard.insert(), [legacy("L1", "ordered"), legacy("L2", "closed"),
                                       legacy("L3", "ordered", provisional=True), legacy("L4", "open", ordered=False)])
    command = recount_command(svc, None, monkeypatch, capsys)
    assert "2 hazards stored without 即将到期 would be given one" in command("--dry-run")
    assert F.consume(svc)["dead"] == 0   # the consumer's start fills them
    got = hazard_rows(svc.engine)
    # 15 working hours from Monday 09:00 to Wednesday 09:00; the last 3 h from Tuesday 15:00
    for hid in ("L1", "L4"):
        assert got[hid]["due_soon_at"] == t("2026-11-03T15:00:00") and got[hid]["last_seq"] == 4, hid
        assert got[hid]["deadline_at"] == t("2026-11-04T09:00:00") and got[hid]["deadline_provisional"] is False
    for hid in ("L2", "L3"):   # closed; a provisional weekday count: left alone
        assert got[hid]["due_soon_at"] is None and got[hid]["last_seq"] == 3, hid
    assert "given one" not in command()   # nothing left
