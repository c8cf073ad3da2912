"""Settings are declared once and documented; the command line fails with one clear line."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from dashboard.settings import SETTINGS, Settings, settings_table_markdown
from tests.processes import end_process

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


def test_cli007_options_of_the_default_command_work_without_naming_it():
    from dashboard.cli import build_parser, with_default_command

    # the README's form, python -m dashboard [serve] [--host H] [--port P] [--no-demo]
    for argv in (["--port", "8052"], ["serve", "--port", "8052"]):
        args = build_parser().parse_args(with_default_command(argv))
        assert (args.command, args.port, args.no_demo) == ("serve", 8052, False)
    args = build_parser().parse_args(with_default_command(["--host", "0.0.0.0", "--no-demo"]))
    assert (args.command, args.host, args.port, args.no_demo) == ("serve", "0.0.0.0", None, True)
    assert build_parser().parse_args(with_default_command([])).command == "serve"
    assert build_parser().parse_args(with_default_command(["settings"])).command == "settings"
    # -h alone is the overview of every command, not serve's help
    assert with_default_command(["-h"]) == ["-h"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli008_serve_options_without_the_command_name_start_the_server(tmp_path):
    # a real process: `python -m dashboard --port P --no-demo` serves on P (it stopped with
    # "argument command: invalid choice: 'P'" before)
    import os
    import urllib.request

    port = _free_port()
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
           "REDIS_URL": "", "HOME": str(tmp_path), "SECRET_KEY": "cli008-key"}  # --no-demo needs one
    err = tmp_path / "stderr.txt"
    with open(err, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), "--no-demo"], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        # waits for the condition itself (/healthz answers on that port), or for the process to end
        deadline, status = time.monotonic() + 120, None
        while status is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status = r.status
            except OSError:  # not listening yet
                time.sleep(0.1)
        assert status == 200, (proc.poll(), err.read_text()[-2000:])
    finally:
        end_process(proc)
    assert "invalid choice" not in err.read_text()


def test_cli009_an_unknown_command_is_still_refused_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "dashboard", "bogus"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'bogus'" in out.stderr.strip().splitlines()[-1]
    out = subprocess.run([sys.executable, "-m", "dashboard", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "export-regions" in out.stdout and "--port 8052" in out.stdout


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules ``module`` imports anywhere in its file (top level or inside functions)."""
    import ast

    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def test_cli010_the_code_has_no_import_cycle():
    # dashboard/cli.py defined CliError and imported boundary/cli, demo/seed and feed/simulate, which
    # imported it back; the error lives in dashboard/errors.py, which imports none of them
    files = {}
    for pkg in ("dashboard", "callbacks", "layouts"):
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {m: _imports(f, m, set(files)) for m, f in files.items()}
    cycles = []
    for start in graph:  # a module that reaches itself is on a cycle
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
    assert cycles == []
    assert _imports(files["dashboard.errors"], "dashboard.errors", set(files)) == set()


def test_cli011_a_package_adds_its_subcommand_with_one_entry(tmp_path, monkeypatch, capsys):
    # how a capability in its own package (e.g. the weekly briefing) registers a subcommand:
    # a module with add_arguments(parser) and run(args, settings), named in COMMANDS
    from dashboard import cli

    (tmp_path / "extra_cmd.py").write_text(
        "def add_arguments(p):\n    p.add_argument('--week')\n\n"
        "def run(args, settings):\n    print('week', args.week, settings.timezone)\n    return 3\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "extra", cli.module_command("an extra command", "extra_cmd"))
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level  # main() sets up the process's logging; give it back
    try:
        assert cli.main(["extra", "--week", "2026-W49"]) == 3
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert capsys.readouterr().out.strip() == "week 2026-W49 Asia/Shanghai"
    assert "extra" in cli.build_parser().format_help()
