"""No code path turns text into HTML (issue 18, item 5): the browser-side assets build elements and
set textContent, and no layout or callback asks Dash for raw HTML or Markdown. A static check beside
the browser test (test_xss001), so a later innerHTML on any asset fails here at once."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS_SINKS = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML\s*\(|document\.write(ln)?\s*\(|"
                      r"\bhtml\s*:\s*(?!\"\"|'')[^,}\s]|\.setHTMLUnsafe\s*\(|\beval\s*\(|new\s+Function\s*\(")
PY_SINKS = re.compile(r"dangerously_allow_html|dcc\.Markdown|html\.Iframe\([^)]*srcDoc|\"cellRenderer\"\s*:\s*\"markdown\"")


def sinks(folder: Path, pattern: re.Pattern, glob: str) -> list[str]:
    out = []
    for path in sorted(folder.rglob(glob)):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                out.append(f"{path.relative_to(folder.parent)}:{n}: {line.strip()[:100]}")
    return out


def test_access250_assets_never_parse_text_as_html():
    assert list((ROOT / "dashboard" / "assets").glob("*.js"))  # the check reads something
    assert sinks(ROOT / "dashboard" / "assets", JS_SINKS, "*.js") == []


def test_access251_no_layout_or_callback_asks_for_raw_html_or_markdown():
    found = []
    for folder in ("layouts", "callbacks", "dashboard"):
        found += sinks(ROOT / folder, PY_SINKS, "*.py")
    assert found == []
