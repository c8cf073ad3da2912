"""The /briefing page in headless Chromium: choose a week and a scope, the preview shows the
summary and the charts, every download (each file and the ZIP) arrives whole, no console errors."""
from __future__ import annotations

import subprocess
import time
import zipfile

import openpyxl
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from dashboard.app import create_app
from tests.integration.wallkit import AppServer, chrome, severe_logs, wait_for
from tests.unit.brief_support import by_hand
from tests.unit.kpi_fixtures import STREET_A, seeded

pytestmark = pytest.mark.browser


def downloaded(folder, names, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        have = {p.name for p in folder.iterdir() if not p.name.endswith(".crdownload")}
        if set(names) <= have:
            return
        time.sleep(0.2)
    raise AssertionError(f"downloads missing: {set(names) - {p.name for p in folder.iterdir()}}")


def test_brief030_choose_week_and_scope_preview_and_download_everything(stack, make_services, tmp_path):
    services = make_services(*stack)
    world = seeded(services.engine)
    hand = by_hand(world, STREET_A)
    dl = tmp_path / "downloads"
    dl.mkdir()
    driver = chrome(1600, 1000)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(dl)})
        with AppServer(create_app(services.settings, services), sign_in=True) as srv:  # an administrator
            driver.get(f"{srv.url}/briefing")
            # the first view: the district, last week (the fixture's data is older: it says so)
            wait_for(driver, "document.querySelector('.bf-downloads')", timeout=180)
            assert Select(driver.find_element(By.NAME, "scope")).first_selected_option.get_attribute("value") == "370202"
            Select(driver.find_element(By.NAME, "scope")).select_by_value(STREET_A)
            Select(driver.find_element(By.NAME, "week")).select_by_value("2026-W46")
            driver.find_element(By.CSS_SELECTOR, ".bf-make").click()
            wait_for(driver, "location.search.indexOf('week=2026-W46') >= 0", timeout=30)
            wait_for(driver, "document.querySelector('.bf-heading') && "
                             "document.querySelector('.bf-heading').textContent.indexOf('2026-W46') >= 0", timeout=180)
            heading = driver.find_element(By.CSS_SELECTOR, ".bf-heading").text
            assert "八大峡街道" in heading and STREET_A in heading
            summary = driver.find_element(By.CSS_SELECTOR, ".bf-summary").text
            assert f"八大峡街道共受理事件{hand['reported']:,}件" in summary
            assert "Noto Sans CJK SC" in driver.find_element(By.CSS_SELECTOR, ".bf-font").text
            # the charts drew (8 pictures, 1280 px wide each)
            wait_for(driver, "Array.from(document.querySelectorAll('.bf-chart img'))"
                             ".filter(i => i.complete && i.naturalWidth === 1280).length === 8", timeout=60)
            # every file downloads: click each link as a person would
            links = driver.find_elements(By.CSS_SELECTOR, ".bf-file")
            names = [a.get_attribute("download") for a in links]
            assert [n.rsplit(".", 1)[-1] for n in names] == ["zip", "pdf", "xlsx", "txt"]
            for a in links:
                a.click()
            chart_links = driver.find_elements(By.CSS_SELECTOR, ".bf-chart figcaption a")
            assert len(chart_links) == 24
            chart_links[0].click()  # the trend's PNG
            chart_links[2].click()  # and its SVG
            downloaded(dl, names + [chart_links[0].get_attribute("download"), chart_links[2].get_attribute("download")])
            stem = f"briefing-{STREET_A}-2026-W46"
            with zipfile.ZipFile(dl / f"{stem}.zip") as z:
                listed = z.namelist()
                assert f"{stem}/{stem}.pdf" in listed and f"{stem}/charts/hotspots@2x.png" in listed
                assert len(listed) == 8 * 3 + 3  # charts (png, 2x png, svg), pdf, xlsx, summary
            text = subprocess.run(["pdftotext", str(dl / f"{stem}.pdf"), "-"], capture_output=True, text=True).stdout
            assert "八大峡街道（370202001）" in text and "2026-W46" in text
            assert openpyxl.load_workbook(dl / f"{stem}.xlsx")["核心指标"]["B2"].value == hand["reported"]
            assert (dl / f"{stem}-summary.txt").read_text(encoding="utf-8").strip() == summary.replace("\n", "")
            assert (dl / f"{stem}-trend.png").read_bytes()[:4] == b"\x89PNG"
            assert b"<svg" in (dl / f"{stem}-trend.svg").read_bytes()[:400]
            # a scope the store does not know is refused on the server, in words
            driver.get(f"{srv.url}/briefing?scope=999999&week=2026-W46")
            wait_for(driver, "document.querySelector('.bf-error')", timeout=60)
            assert "unknown scope 999999" in driver.find_element(By.CSS_SELECTOR, ".bf-error").text
            assert severe_logs(driver) == []
    finally:
        driver.quit()
