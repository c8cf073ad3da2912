"""Settings are declared once and documented; the command line fails with one clear line."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dashboard.settings import SETTINGS, Settings, settings_table_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_cli001_readme_settings_table_is_the_declared_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", readme, re.S)
    assert block, "README lacks the settings table markers"
    assert block.group(1).strip() == settings_table_markdown().strip()


def test_cli002_settings_read_from_environment_with_types():
    s = Settings.from_env({"PORT": "9000", "DEMO": "false", "SIM_RATE": "2.5", "REDIS_URL": "redis://x:1/0"})
    assert s.port == 9000 and s.demo is False and s.sim_rate == 2.5 and s.redis_url == "redis://x:1/0"
    d = Settings.from_env({})
    assert d.port == 8050 and d.demo is True and d.timezone == "Asia/Shanghai"
    assert {x.name for x in SETTINGS} >= {"DATABASE_URL", "REDIS_URL", "TIMEZONE", "INGEST_API_KEYS"}


def test_cli003_sqlite_under_var_by_default(tmp_path):
    s = Settings.from_env({"VAR_DIR": str(tmp_path / "v")})
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'v' / 'grid.db'}"


def test_cli004_seed_refusal_is_one_line_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
           "HOME": str(tmp_path)}
    # A store that already holds a region makes `seed` refuse without --force.
    from dashboard.store.engine import make_engine, migrate
    from dashboard.store.regions import RegionRow, upsert_regions
    import shapely

    eng = make_engine(env["DATABASE_URL"])
    migrate(eng)
    with eng.begin() as conn:
        upsert_regions(conn, [RegionRow("370202", "市南区", "district", shapely.box(120.3, 36.0, 120.4, 36.1))])
    eng.dispose()
    out = subprocess.run([sys.executable, "-m", "dashboard", "seed"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--force" in last


def test_cli005_system_locale_lang_does_not_pick_the_ui_language():
    # LANG is the POSIX locale (C.UTF-8 on this machine): it must not leak into the UI language.
    assert Settings.from_env({"LANG": "C.UTF-8"}).ui_lang == "zh"
    assert Settings.from_env({"UI_LANG": "en"}).ui_lang == "en"


def test_cli006_a_bad_setting_is_one_line_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "HOME": str(tmp_path), "UI_LANG": "fr"}
    out = subprocess.run([sys.executable, "-m", "dashboard", "settings"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: setting UI_LANG='fr' is not valid: UI_LANG must be zh or en, not 'fr'"
