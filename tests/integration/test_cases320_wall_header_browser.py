"""The wall's header in headless Chromium: overdue and 即将到期 by the case engine's rules, and the
warning when the next 60 days reach a year no holiday calendar knows (docs/kpi.md)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from callbacks.wall import calendar_unknown
from dashboard import synthetic_city as sc
from dashboard.app import create_app
from dashboard.i18n import t
from dashboard.store.schema import event
from tests.integration.wallkit import AppServer, chrome, severe_logs, wait_for
from tests.unit.kpi_fixtures import make_event

pytestmark = pytest.mark.browser

H = timedelta(hours=1)


def tile(driver, key: str):
    return driver.execute_script(
        f"var e=document.querySelector('[data-kpi=\"{key}\"] .pn-value');return e?e.textContent:null")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cases320_header_counts_overdue_and_due_soon_and_warns_of_the_calendar(stack, make_services, lang):
    svc = make_services(*stack)
    rows = sc.city_regions(streets=2, communities=2, grids=3)
    sc.insert_regions(svc.engine, rows)
    grid = next(r for r in rows if r.level == "grid")
    c = grid.geom.representative_point()
    now = datetime.now(timezone.utc)
    # deadlines hours away from now, so the figures hold however slow the machine is
    cases = [  # state, due_soon_at, deadline_at
        ("handling", now - 5 * H, now - 3 * H),     # overdue
        ("suspended", now - 5 * H, now - 3 * H),    # 挂账: neither
        ("dispatched", now - 2 * H, now + 3 * H),   # due soon
        ("dispatched", now - 2 * H, now + 4 * H),   # due soon
        ("handling", now + 3 * H, now + 6 * H),     # neither yet
    ]
    with svc.engine.begin() as conn:
        conn.execute(event.insert(), [
            make_event(i, grid.code, now - 8 * H, id=f"c320-{i}", state=st, due_soon_at=soon, deadline_at=dl,
                       lon=c.x, lat=c.y) for i, (st, soon, dl) in enumerate(cases)])
    years = calendar_unknown(svc)
    driver = chrome(1920, 1080)
    try:
        with AppServer(create_app(svc.settings, svc), sign_in=True) as srv:
            driver.get(f"{srv.url}/wall?lang={lang}")
            wait_for(driver, "document.querySelector('[data-kpi=\"due_soon\"] .pn-value')", 30)
            # overdue: the one handling past its deadline (not the suspended one); due soon: two
            assert (tile(driver, "open"), tile(driver, "overdue"), tile(driver, "due_soon")) == ("5", "1", "2")
            label = driver.execute_script(
                "return document.querySelector('[data-kpi=\"due_soon\"] .pn-label').textContent")
            assert label == t("kpi_due_soon", lang)
            warning = driver.execute_script(
                "var e=document.getElementById('wall-calendar');return e?[e.textContent,e.title]:null")
            if years:  # December 2026 here: 2027 is in neither chinesecalendar 1.11 nor data/holidays.yaml
                listed = ("、" if lang == "zh" else ", ").join(map(str, years))
                assert warning == [t("wall_calendar_unknown", lang, years=listed),
                                   t("wall_calendar_unknown_note", lang, years=listed)]
                # it sits inside the header, whole, and the wall still has no scrollbars
                assert driver.execute_script("""
                    var w = document.getElementById('wall-calendar').getBoundingClientRect(),
                        h = document.querySelector('.wall-header').getBoundingClientRect();
                    return w.height > 0 && w.top >= h.top - 1 && w.bottom <= h.bottom + 1 && w.right <= h.right + 1""")
            else:
                assert warning is None
            # every headline tile shows whole beside the status column (the strip clips what does not fit)
            assert driver.execute_script("""
                var box = document.querySelector('.wall-figures').getBoundingClientRect(), out = [];
                document.querySelectorAll('.wall-figures .pn-tile').forEach(function (e) {
                    var r = e.getBoundingClientRect();
                    if (r.left < box.left - 1 || r.right > box.right + 1 || e.scrollWidth > e.clientWidth + 1)
                        out.push(e.dataset.kpi);
                });
                return out;""") == []
            # and every label whole: no line of its text runs past its box, to the side (once: 今日按期结…)
            # or below (a third line clamped away); half a line of slack for the CJK font's tall glyphs
            assert driver.execute_script("""
                return [...document.querySelectorAll('.wall-figures .pn-label')].filter(e => {
                    const b = e.getBoundingClientRect(), range = document.createRange(),
                          half = parseFloat(getComputedStyle(e).fontSize) / 2;
                    range.selectNodeContents(e);
                    return [...range.getClientRects()].some(
                        r => r.right > b.right + 1 || r.left < b.left - 1 || r.bottom > b.bottom + half);
                }).map(e => e.textContent);""") == []
            assert driver.execute_script(
                "const d = document.documentElement; return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth")
            assert severe_logs(driver) == []
    finally:
        driver.quit()
