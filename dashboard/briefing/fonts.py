"""The briefing's one font: Noto Sans CJK SC from the pinned ``mplfonts`` wheel (SIL OFL).

A fresh machine running the README's install has no CJK system font (no
``fonts-noto-cjk``); ``mplfonts`` brings Noto Sans CJK SC with pip. The wheel
also ships a SimHei file that is not under a free licence: only the Noto /
Source Han files named in ``CANDIDATES`` are ever used.

Every string the briefing renders (chart text, PDF text) is checked against
the font's character map first (``require``): a character the font lacks is a
loud ``BriefingError`` naming it, never a tofu box. ReportLab embeds TrueType
(glyf) outlines only and Noto CJK is CFF-flavoured OpenType, so the PDF gets a
subset of the font holding the document's characters, its outlines converted
to quadratic curves with fontTools (``pdf_font``).
"""
from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import BriefingError

# (package, file inside it): the first one installed is used. OFL fonts only.
CANDIDATES = (
    ("mplfonts", "fonts/NotoSansCJKsc-Regular.otf"),
    ("mplfonts", "fonts/SourceHanSerifSC-Regular.otf"),
)
LICENCE = "SIL Open Font License 1.1"
# fontTools' subsetter logs each table it prunes at INFO: noise in a scheduled job's log
logging.getLogger("fontTools").setLevel(logging.WARNING)
# Characters a layout engine draws that are not text (line breaks, soft hyphen) need no glyph.
_IGNORED = {"\n", "\r", "\t", "\u00ad"}


@dataclass(frozen=True)
class Font:
    path: Path
    family: str        # e.g. "Noto Sans CJK SC"
    full_name: str     # e.g. "Noto Sans CJK SC Regular"
    cmap: frozenset    # code points the font has a glyph for

    def describe(self, lang: str = "zh") -> str:
        return f"{self.full_name}（{LICENCE}）" if lang == "zh" else f"{self.full_name} ({LICENCE})"

    def missing(self, text: str) -> list[str]:
        return sorted({ch for ch in text if ch not in _IGNORED and ord(ch) not in self.cmap})

    def require(self, text) -> str:
        """``text`` as str, or a BriefingError naming each character the font cannot draw."""
        text = "" if text is None else str(text)
        gone = self.missing(text)
        if gone:
            shown = ", ".join(f"{c!r} U+{ord(c):04X}" for c in gone)
            raise BriefingError(f"the font {self.full_name} ({self.path.name}) has no glyph for {shown} "
                                f"in {text[:60]!r}: refusing to draw tofu boxes")
        return text


def _locate() -> Path | None:
    for package, name in CANDIDATES:
        try:
            path = Path(str(resources.files(package) / name))
        except (ModuleNotFoundError, TypeError):
            continue
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def font() -> Font:
    """The font, or a BriefingError saying how to get one."""
    path = _locate()
    if path is None:
        wanted = ", ".join(f"{p}/{n}" for p, n in CANDIDATES)
        raise BriefingError(f"no CJK font for the briefing: none of {wanted} is installed "
                            "(pip install -r requirements.txt installs mplfonts)")
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as f:
        names = f["name"]
        return Font(path=path, family=str(names.getDebugName(16) or names.getDebugName(1)),
                    full_name=str(names.getDebugName(4)),
                    cmap=frozenset(f.getBestCmap()))


# --- matplotlib ----------------------------------------------------------------------------------

_MPL_LOCK = threading.Lock()


def mpl_family() -> str:
    """Registers the font with matplotlib's font manager once; returns its family name."""
    f = font()
    with _MPL_LOCK:
        from matplotlib import font_manager

        if not any(e.fname == str(f.path) for e in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(str(f.path))
    return font_manager.FontProperties(fname=str(f.path)).get_name()


# --- ReportLab -----------------------------------------------------------------------------------

_RL_LOCK = threading.Lock()


def _to_truetype(otf: bytes, text: str, tag: str) -> bytes:
    """A subset of the CFF font holding ``text``'s characters, with TrueType (glyf) outlines, its
    PostScript name ending in ``-tag``: ReportLab maps every font registered under a face name it
    has seen to the first font of that name, whose subset may lack this document's characters."""
    from fontTools import subset
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont, newTable

    f = TTFont(io.BytesIO(otf))
    opts = subset.Options()
    opts.name_IDs = ["*"]
    opts.layout_features = []
    opts.hinting = False
    opts.notdef_outline = True
    sub = subset.Subsetter(opts)
    sub.populate(text=text)
    sub.subset(f)
    names = f["name"]
    for rec in list(names.names):
        if rec.nameID == 6:
            rec.string = f"{rec.toUnicode()}-{tag}"
    if "CFF " not in f:
        out = io.BytesIO()
        f.save(out)
        return out.getvalue()
    order = f.getGlyphOrder()
    glyph_set = f.getGlyphSet()
    glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyph_set)
        # cubic -> quadratic within one font unit; PostScript contours run the other way round
        glyph_set[name].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyphs[name] = pen.glyph()
    for tag in ("CFF ", "VORG"):
        if tag in f:
            del f[tag]
    glyf = newTable("glyf")
    glyf.glyphOrder, glyf.glyphs = order, glyphs
    f["glyf"] = glyf
    f["loca"] = newTable("loca")
    maxp = f["maxp"]
    maxp.tableVersion = 0x00010000
    for k in ("maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
              "maxStackElements", "maxSizeOfInstructions", "maxComponentElements", "maxComponentDepth"):
        setattr(maxp, k, 0)
    maxp.maxZones = 1
    f["head"].indexToLocFormat = 0
    f["head"].glyphDataFormat = 0
    post = f["post"]
    post.formatType, post.extraNames, post.mapping = 2.0, [], {}
    f.sfntVersion = "\x00\x01\x00\x00"
    out = io.BytesIO()
    f.save(out)
    return out.getvalue()


@lru_cache(maxsize=1)
def _otf_bytes() -> bytes:
    return font().path.read_bytes()


# The process's TrueType subset: (characters it covers, ReportLab font name). Converting costs
# a second or two (parsing the CFF font, then every glyph), so a document whose characters are
# all in the current subset uses it (ReportLab embeds only the glyphs a document draws), and a
# document with new ones makes a new subset of the union.
_CURRENT: tuple[frozenset, str] = (frozenset(), "")


def pdf_font(text: str) -> str:
    """A ReportLab font name for a TrueType subset of the font covering ``text``, after checking
    every character is in the font (``Font.require``)."""
    global _CURRENT
    f = font()
    f.require(text)
    wanted = frozenset(text) - _IGNORED | {" "}
    with _RL_LOCK:
        covered, name = _CURRENT
        if wanted <= covered:
            return name
        chars = "".join(sorted(covered | wanted))
        key = hashlib.sha1(chars.encode("utf-8")).hexdigest()[:12]
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        name = f"BriefingCJK-{key}"
        pdfmetrics.registerFont(TTFont(name, io.BytesIO(_to_truetype(_otf_bytes(), chars, key))))
        _CURRENT = (frozenset(chars), name)
    return name


def cover(text: str) -> None:
    """Makes the PDF subset cover ``text`` ahead of the documents that will draw it (a run of
    several briefings converts the font once instead of once per new name)."""
    pdf_font(text)
