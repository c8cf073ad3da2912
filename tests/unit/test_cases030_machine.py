"""The case and hazard cycles: every (state, step) pair against the table, and hand-written
expectations for the legal steps and the key paths, so a wrong table fails here."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard import domain
from dashboard.cases import clock, machine as M
from dashboard.cases.machine import Case, Hazard, IllegalStep, Step
from dashboard.cases.taxonomy import Deadline
from dashboard.cases.workcalendar import WorkCalendar

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)  # a Monday

# Written by hand from the issue (not from the table): the steps each state allows.
RUNNING_STEPS = {"suspended", "extended", "supervised", "merged"}
CASE_LEGAL = {
    "reported": {"registered", "rejected", "supervised", "merged"},
    "registered": {"dispatched", "escalated"} | RUNNING_STEPS,
    "dispatched": {"handling", "escalated", "returned"} | RUNNING_STEPS,
    "handling": {"feedback", "escalated", "returned"} | RUNNING_STEPS,
    "escalated": {"dispatched", "handling", "escalated", "returned"} | RUNNING_STEPS,
    "returned": {"dispatched", "escalated"} | RUNNING_STEPS,
    "reopened": {"handling", "escalated"} | RUNNING_STEPS,
    "suspended": {"resumed", "supervised", "merged"},
    "feedback": {"verified", "reopened", "supervised", "merged"},
    "verified": {"closed", "reopened", "supervised", "merged"},
    "closed": {"evaluated"},
    "evaluated": set(),
    "rejected": set(),
    "merged": set(),
}
HAZARD_LEGAL = {
    "found": {"ordered"},
    "ordered": {"rectified", "extended"},
    "rectified": {"passed", "failed"},
    "passed": {"closed"},
    "closed": set(),
}


def step(code, at=T0, note="", actor="op1", **payload):
    return Step(code, actor, at, note, payload)


def valid_step(code, at=T0 + timedelta(hours=1)):
    """A step carrying everything its rule asks for."""
    return Step(code, "op1", at, "理由", {"deadline_at": at + timedelta(days=3), "into": "OTHER"})


def case_in(state, level=3):
    resume = "handling" if state == "suspended" else None
    return Case("E1", state, level, T0 + timedelta(days=1), resume_to=resume,
                suspensions=((T0, None),) if state == "suspended" else ())


@pytest.mark.parametrize("state", list(M.CASE_STATES))
def test_cases030_each_state_allows_exactly_the_hand_written_steps(state):
    assert set(M.legal_steps(state)) == CASE_LEGAL[state]


@pytest.mark.parametrize("state", list(M.HAZARD_STATES))
def test_cases031_each_hazard_state_allows_exactly_the_hand_written_steps(state):
    assert set(M.legal_steps(state, M.HAZARD_RULES)) == HAZARD_LEGAL[state]


PAIRS = [(s, r.step) for s in M.CASE_STATES for r in M.CASE_RULES]


@pytest.mark.parametrize("state,code", PAIRS, ids=[f"{s}-{c}" for s, c in PAIRS])
def test_cases032_every_case_transition_legal_or_refused(state, code):
    case = case_in(state)
    rule = M.CASE_STEPS[code]
    if code in CASE_LEGAL[state]:
        after = M.apply_step(case, valid_step(code))
        expected = {M.SAME: state, M.RESUME: "handling"}.get(rule.target, rule.target)
        assert after.state == expected
        assert after.history[-1].step == code and after.history[-1].actor == "op1"
    else:
        with pytest.raises(IllegalStep) as err:
            M.apply_step(case, valid_step(code))
        assert str(err.value).startswith(f"illegal step {code!r} on case E1 in state {state!r}: not allowed")
    assert case.state == state and case.history == ()  # the case itself never changes


HPAIRS = [(s, r.step) for s in M.HAZARD_STATES for r in M.HAZARD_RULES]


@pytest.mark.parametrize("state,code", HPAIRS, ids=[f"{s}-{c}" for s, c in HPAIRS])
def test_cases033_every_hazard_transition_legal_or_refused(state, code):
    hz = Hazard("H1", state, T0 + timedelta(days=1))
    if code in HAZARD_LEGAL[state]:
        after = M.apply_hazard_step(hz, valid_step(code))
        rule = M.HAZARD_STEPS[code]
        assert after.state == (state if rule.target == M.SAME else rule.target)
    else:
        with pytest.raises(IllegalStep, match=rf"^illegal step '{code}' on hazard H1 in state '{state}': not allowed"):
            M.apply_hazard_step(hz, valid_step(code))


def run(case, *steps):
    for s in steps:
        case = M.apply_step(case, s)
    return case


def test_cases034_the_whole_cycle_keeps_actor_time_and_note():
    c = M.report("E1", actor="grid-007", at=T0, level=3, deadline_at=T0 + timedelta(days=1))
    t = [T0 + timedelta(hours=i) for i in range(1, 9)]
    c = run(c, step("registered", t[0], "已立案"), step("dispatched", t[1], actor="op2"),
            step("handling", t[2], actor="community-1"), step("feedback", t[3], "已处置"),
            step("verified", t[4]), step("closed", t[5]), step("evaluated", t[6], satisfaction=5))
    assert c.state == "evaluated"
    assert [s.step for s in c.history] == ["reported", "registered", "dispatched", "handling", "feedback",
                                           "verified", "closed", "evaluated"]
    assert c.history[0].actor == "grid-007" and c.history[2].actor == "op2" and c.history[1].note == "已立案"
    assert c.history[4].at == t[3]
    with pytest.raises(IllegalStep, match=r"^illegal step 'handling' on case E1 in state 'evaluated': "
                                          r"not allowed from this state \(allowed: none: the case is finished\)$"):
        M.apply_step(c, step("handling", t[7]))


def test_cases035_the_simulators_paths_are_legal():
    # dashboard/feed/simulate.py's paths today: base, escalated, reworked
    base = ["registered", "dispatched", "handling", "feedback", "verified", "closed", "evaluated"]
    escalated = ["registered", "dispatched", "handling", "escalated", "handling", "feedback", "verified", "closed"]
    rework = ["registered", "dispatched", "handling", "feedback", "verified", "reopened", "handling", "feedback",
              "verified", "closed", "evaluated"]
    for path in (base, escalated, rework):
        c = M.report("E1", actor="w", at=T0, level=3)
        c = run(c, *[step(s, T0 + timedelta(minutes=i), note="说明") for i, s in enumerate(path)])
        assert c.state == path[-1]
    assert set(domain.EVENT_STEPS) <= set(M.CASE_STEPS) | {"reported"}  # the feed's codes are kept
    assert set(M.CASE_STEPS) <= set(domain.EVENT_STEPS)  # the feed accepts every step of the engine


def test_cases036_rejection_return_and_rework_need_a_reason():
    c = M.report("E2", actor="w", at=T0, level=3)
    with pytest.raises(IllegalStep, match=r"^illegal step 'rejected' on case E2 in state 'reported': the step needs a reason"):
        M.apply_step(c, step("rejected"))
    assert M.apply_step(c, step("rejected", note="不属于受理范围")).state == "rejected"
    d = run(c, step("registered"), step("dispatched"))
    with pytest.raises(IllegalStep, match="needs a reason"):
        M.apply_step(d, step("returned", note="   "))
    back = M.apply_step(d, step("returned", note="非本单位职责"))
    assert back.state == "returned" and back.returns == 1
    assert M.apply_step(back, step("dispatched")).state == "dispatched"  # re-dispatched to the right unit


def test_cases037_escalation_moves_one_tier_up_and_stops_at_tier_1():
    c = run(M.report("E3", actor="w", at=T0, level=3), step("registered"), step("dispatched"), step("handling"))
    c = M.apply_step(c, step("escalated", note="本级无法解决"))
    assert (c.state, c.level, c.escalations) == ("escalated", 2, 1)
    with pytest.raises(IllegalStep, match="one tier up, from 2 to 1, not to 3"):
        M.apply_step(c, step("escalated", level=3))
    c = M.apply_step(c, step("escalated", actor="system", note="超期自动升级"))
    assert (c.level, c.escalations) == (1, 2)
    with pytest.raises(IllegalStep, match=r"^illegal step 'escalated' on case E3 in state 'escalated': "
                                          r"the case is already at tier 1"):
        M.apply_step(c, step("escalated"))


def test_cases038_suspension_returns_to_its_state_and_feeds_the_clock():
    c = run(M.report("E4", actor="w", at=T0, level=3), step("registered"), step("dispatched"),
            step("handling", T0 + timedelta(minutes=30)))
    s = M.apply_step(c, step("suspended", T0 + timedelta(hours=1), note="等待配件"))
    assert s.state == "suspended" and s.resume_to == "handling" and s.suspensions == ((T0 + timedelta(hours=1), None),)
    with pytest.raises(IllegalStep, match="in state 'suspended': not allowed"):
        M.apply_step(s, step("feedback"))
    with pytest.raises(IllegalStep, match="in state 'suspended': not allowed"):
        M.apply_step(s, step("extended", note="x", deadline_at=T0 + timedelta(days=9)))
    r = M.apply_step(s, step("resumed", T0 + timedelta(hours=5)))
    assert r.state == "handling" and r.resume_to is None
    assert r.suspensions == ((T0 + timedelta(hours=1), T0 + timedelta(hours=5)),)
    # 10:00-14:00 suspended: a working day from Monday 09:00 ends Tuesday 11:30, not 09:00
    tl = clock.Timeline(T0, Deadline("working_days", 1), suspensions=r.suspensions)
    assert clock.status(WorkCalendar(), tl, T0 + timedelta(hours=6)).deadline.at == datetime(2026, 11, 3, 11, 30, tzinfo=TZ)


def test_cases039_extension_needs_a_reason_and_a_later_deadline():
    c = run(M.report("E5", actor="w", at=T0, level=3, deadline_at=T0 + timedelta(days=1)),
            step("registered"), step("dispatched"))
    later = T0 + timedelta(days=3)
    with pytest.raises(IllegalStep, match=r"^illegal step 'extended' on case E5 in state 'dispatched': the step needs a reason"):
        M.apply_step(c, step("extended", deadline_at=later))
    with pytest.raises(IllegalStep, match="needs deadline_at"):
        M.apply_step(c, step("extended", note="需协调多部门"))
    with pytest.raises(IllegalStep, match="not later than the current"):
        M.apply_step(c, step("extended", note="需协调多部门", deadline_at=T0 + timedelta(hours=12)))
    e = M.apply_step(c, step("extended", T0 + timedelta(hours=2), note="需协调多部门", actor="leader-1", deadline_at=later))
    assert e.state == "dispatched" and e.deadline_at == later and e.extensions == ((T0 + timedelta(hours=2), later),)
    assert e.history[-1].actor == "leader-1"  # the approver


def test_cases040_supervision_is_a_flag_not_a_state():
    c = run(M.report("E6", actor="w", at=T0, level=2), step("registered"))
    with pytest.raises(IllegalStep, match=r"needs a reason \(why it is supervised\)"):
        M.apply_step(c, step("supervised", actor="secretary-1"))
    s = M.apply_step(c, step("supervised", actor="secretary-1", note="群众反映强烈"))
    assert s.state == "registered" and s.supervision == (M.Supervision("secretary-1", T0, "群众反映强烈"),)
    closed = run(s, step("dispatched"), step("handling"), step("feedback"), step("verified"), step("closed"))
    with pytest.raises(IllegalStep, match="in state 'closed'"):
        M.apply_step(closed, step("supervised", note="x"))


def test_cases041_a_merged_case_takes_no_further_step():
    c = M.report("E7", actor="w", at=T0, level=3)
    with pytest.raises(IllegalStep, match="needs into"):
        M.apply_step(c, step("merged"))
    with pytest.raises(IllegalStep, match="cannot be merged into itself"):
        M.apply_step(c, step("merged", into="E7"))
    m = M.apply_step(c, step("merged", into="E1"))
    assert m.state == "merged" and m.merged_into == "E1"
    for code in M.CASE_STEPS:
        with pytest.raises(IllegalStep, match=rf"^illegal step '{code}' on case E7 in state 'merged'"):
            M.apply_step(m, valid_step(code))


def test_cases042_unknown_steps_missing_actor_or_naive_time_are_refused():
    c = M.report("E8", actor="w", at=T0, level=3)
    with pytest.raises(IllegalStep, match=r"^illegal step 'approved' on case E8 in state 'reported': no such step"):
        M.apply_step(c, step("approved"))
    with pytest.raises(IllegalStep, match="needs an actor"):
        M.apply_step(c, step("registered", actor=""))
    with pytest.raises(IllegalStep, match="time zone-aware"):
        M.apply_step(c, step("registered", at=datetime(2026, 11, 2, 9)))
    with pytest.raises(IllegalStep, match="satisfaction must be 1 to 5"):
        M.apply_step(run(c, step("registered"), step("dispatched"), step("handling"), step("feedback"),
                         step("verified"), step("closed")), step("evaluated", satisfaction=True))


def test_cases043_the_hazard_cycle_with_a_failed_reinspection():
    h = Hazard("H1")
    with pytest.raises(IllegalStep, match=r"^illegal step 'ordered' on hazard H1 in state 'found': the step needs deadline_at"):
        M.apply_hazard_step(h, step("ordered"))
    d1, d2 = T0 + timedelta(days=7), T0 + timedelta(days=20)
    h = M.apply_hazard_step(h, step("ordered", deadline_at=d1))
    h = M.apply_hazard_step(h, step("rectified", T0 + timedelta(days=5)))
    with pytest.raises(IllegalStep, match="needs a reason"):
        M.apply_hazard_step(h, step("failed", T0 + timedelta(days=6), deadline_at=d2))
    h = M.apply_hazard_step(h, step("failed", T0 + timedelta(days=6), note="消防通道仍有堆物", deadline_at=d2))
    assert (h.state, h.deadline_at, h.failures) == ("ordered", d2, 1)
    with pytest.raises(IllegalStep, match="in state 'ordered': not allowed"):
        M.apply_hazard_step(h, step("passed"))
    with pytest.raises(IllegalStep, match="not later than the current"):
        M.apply_hazard_step(h, step("extended", note="x", deadline_at=d1))
    for s in ("rectified", "passed", "closed"):
        h = M.apply_hazard_step(h, step(s, T0 + timedelta(days=8)))
    assert h.state == "closed" and [s.step for s in h.history] == ["ordered", "rectified", "failed", "rectified",
                                                                   "passed", "closed"]


DOC = Path(__file__).resolve().parents[2] / "docs" / "cases.md"


def test_cases044_docs_cases_md_shows_the_tables_of_the_module():
    text = DOC.read_text(encoding="utf-8")
    for marker, table in M.docs_tables().items():
        found = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
        assert found, f"docs/cases.md lacks the {marker} table (python -m dashboard.cases.machine prints it)"
        assert found.group(1).strip() == table, f"docs/cases.md's {marker} table differs from the module"
