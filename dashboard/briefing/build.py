"""Making a briefing's files: figures → charts → summary → PDF, XLSX → a ZIP of them all.

``make(...)`` writes one briefing into a folder; ``make_many`` writes several (every street of a
district) reusing what they share: the region geometry, projected once, and the font's subsets.
``progress(scope, step, done, total)`` hears each step, for a progress bar or log lines.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from dashboard.store.regions import load_regions

from . import charts as charts_mod
from . import figures, fonts, pdf, summary, words, xlsx
from .hotspots import Geometry, hotspot_map  # noqa: F401 - Geometry is shared by callers
from .week import Week

STEPS = ("figures", *[name for name, _ in charts_mod.CHARTS], "hotspots", "summary", "pdf", "xlsx", "zip")


@dataclass
class Briefing:
    scope: str
    week: str
    lang: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)   # name -> path (pdf, xlsx, summary, zip, charts)
    figures: dict = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    chart_titles: list[tuple[str, str]] = field(default_factory=list)  # (name, title) in document order

    @property
    def stem(self) -> str:
        return stem(self.scope, self.week, self.lang)


def stem(scope: str, week: str, lang: str) -> str:
    return f"briefing-{scope}-{week}" + ("-en" if lang == "en" else "")


def make(engine, scope: str, week: Week, out: Path, *, tz, lang: str = "zh", now: datetime | None = None,
         geometry: Geometry | None = None, progress: Callable[[str, str, int, int], None] | None = None) -> Briefing:
    now = now or datetime.now(timezone.utc)
    say = (lambda *a: progress(scope, *a)) if progress else (lambda *_: None)
    total = len(STEPS)
    step = iter(range(1, total + 1))
    f = figures.compute(engine, scope, week, now, tz)
    say("figures", next(step), total)
    made = {}
    for name, fn in charts_mod.CHARTS:
        made[name] = fn(f, lang)
        say(name, next(step), total)
    if geometry is None or not geometry.covers(scope):
        geometry = Geometry(engine, scope)
    made["hotspots"] = hotspot_map(f, geometry, lang)
    say("hotspots", next(step), total)
    sentences = summary.summary(f, lang)
    say("summary", next(step), total)
    b = Briefing(scope=scope, week=week.iso, lang=lang, folder=Path(out) / stem(scope, week.iso, lang),
                 figures=f, summary=sentences,
                 chart_titles=[(name, c.title) for name, c in made.items()])
    b.folder.mkdir(parents=True, exist_ok=True)
    (b.folder / "charts").mkdir(exist_ok=True)
    for name, c in made.items():
        for suffix, data in ((".png", c.png), ("@2x.png", c.png2x), (".svg", c.svg)):
            path = b.folder / "charts" / f"{name}{suffix}"
            path.write_bytes(data)
            b.files[f"charts/{name}{suffix}"] = path
    text_path = b.folder / f"{b.stem}-summary.txt"
    text_path.write_text(summary.text(f, lang) + "\n", encoding="utf-8")
    b.files["summary"] = text_path
    pdf_path = b.folder / f"{b.stem}.pdf"
    pdf_path.write_bytes(pdf.build(f, made, sentences, lang))
    b.files["pdf"] = pdf_path
    say("pdf", next(step), total)
    xlsx_path = b.folder / f"{b.stem}.xlsx"
    xlsx_path.write_bytes(xlsx.build(f, lang))
    b.files["xlsx"] = xlsx_path
    say("xlsx", next(step), total)
    zip_path = b.folder / f"{b.stem}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for key, path in sorted(b.files.items()):
            # PNG is compressed already: stored, not deflated again
            z.write(path, f"{b.stem}/{path.relative_to(b.folder).as_posix()}",
                    compress_type=zipfile.ZIP_STORED if path.suffix == ".png" else zipfile.ZIP_DEFLATED)
    zip_path.write_bytes(buf.getvalue())
    b.files["zip"] = zip_path
    say("zip", next(step), total)
    return b


def make_many(engine, scopes: list[str], week: Week, out: Path, *, tz, lang: str = "zh",
              now: datetime | None = None, root: str | None = None,
              progress: Callable[[str, str, int, int], None] | None = None) -> list[Briefing]:
    """Several briefings of one week; the geometry of ``root`` (default: the scopes' common
    district) is loaded and projected once for all of them."""
    now = now or datetime.now(timezone.utc)
    root = root or _common_prefix(scopes)
    geometry = Geometry(engine, root)
    # the region names the documents will print, and the briefing's own words, in one font subset
    names = "".join(r["name"] for r in load_regions(engine, scope=root or None, with_geometry=False))
    fonts.cover(names + "".join(zh + en for zh, en in words.TEXT.values()) + pdf.ALWAYS)
    return [make(engine, s, week, out, tz=tz, lang=lang, now=now, geometry=geometry, progress=progress)
            for s in scopes]


def _common_prefix(codes: list[str]) -> str:
    first = min(codes, key=len)
    n = len(first)
    while n and not all(c.startswith(first[:n]) for c in codes):
        n -= 1
    return first[:n]
