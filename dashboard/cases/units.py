"""The register of handling units in the store (table ``handling_unit``): the demo's, built from
its regions, and units imported from a file people edit (CSV or YAML).

Three tiers (三级办理): every community's 居委会 at tier 3; every street's 街道办事处 and its
sections (one per tier-2 unit type of data/taxonomy.yaml) at tier 2; the district's departments
(one per tier-1 unit type: 城管, 市场监管, 住建, 消防, 公安, 司法, 生态环境, 水务, 民政, 信访)
at tier 1. A unit's ``region_code`` is the area it serves: a tier-3 unit a community, a tier-2
unit a street, a tier-1 unit the district.

An import file is all or nothing: the first mistake refuses the whole file with
``file:line: what`` (``UnitFileError``): a missing column, a repeated code, an unknown tier, a
unit type that does not exist or is of another tier, a region that is not in the store or not
of the tier's level, a parent that is not a unit.
"""
from __future__ import annotations

import csv
import re
from dataclasses import asdict
from pathlib import Path

import yaml
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from ..store.schema import handling_unit as T
from ..store.schema import region as R
from . import taxonomy as tx
from .routing import Unit
from .yamlfile import BOOL, FileError, Reader, compose

# the level of the area each tier serves
TIER_LEVEL = {3: "community", 2: "street", 1: "district"}
CODE = re.compile(r"^[A-Za-z0-9_.:\-]{1,32}$")   # the feed's id characters (a dispatch names the unit)
COLUMNS = ("code", "name_zh", "name_en", "tier", "unit_type", "region_code")
OPTIONAL = ("parent_code", "active")
DEMO_SOURCE = "demo"


class UnitFileError(FileError):
    """A units file that cannot be imported; the message names the file and line."""


def unit_code(region_code: str, unit_type: str) -> str:
    """The demo's unit codes: the area and the type, e.g. ``370202001:street_police``."""
    return f"{region_code}:{unit_type}"


# --- the demo's units -------------------------------------------------------------------------------

def _zh_name(ut: tx.UnitType, region_name: str) -> str:
    """A unit's Chinese name from its type's and its area's: 八大峡街道 + 街道城管执法中队 ->
    八大峡街道城管执法中队; 市南区 + 区城市管理局 -> 市南区城市管理局; 八大峡街道 + 派出所 ->
    八大峡派出所; 八大峡社区 + 社区居委会 -> 八大峡社区居委会."""
    for generic, suffix in (("街道", "街道"), ("社区", "社区"), ("区", "区")):
        if ut.zh.startswith(generic) and region_name.endswith(suffix):
            return region_name + ut.zh[len(generic):]
    stem = re.sub(r"(街道|社区|区)$", "", region_name)
    return stem + ut.zh


def demo_units(regions: list[dict], taxonomy: tx.Taxonomy | None = None) -> list[Unit]:
    """The units of a jurisdiction given its regions (dicts with code, name, level)."""
    tax = taxonomy or tx.load()
    by_tier: dict[int, list[tx.UnitType]] = {}
    for ut in tax.unit_types.values():
        by_tier.setdefault(ut.tier, []).append(ut)
    out: list[Unit] = []
    for r in sorted(regions, key=lambda r: r["code"]):
        tier = {v: k for k, v in TIER_LEVEL.items()}.get(r["level"])
        if tier is None:
            continue
        office = None
        if tier == 2:  # the street office heads its sections and its communities' committees
            office = unit_code(r["code"], "street_office")
        for ut in by_tier.get(tier, ()):
            code = unit_code(r["code"], ut.code)
            parent = office if office and code != office else None
            if tier == 3 and r.get("parent_code"):
                parent = unit_code(r["parent_code"], "street_office")
            out.append(Unit(code, _zh_name(ut, r["name"]), f"{ut.en} ({r['name']})", tier, ut.code,
                            r["code"], parent, True))
    return out


def seed_demo_units(conn: Connection) -> int:
    """Write the demo's units for the regions in the store (replacing earlier demo units; units
    imported from a file are kept, and keep their codes). Returns the number written."""
    regions = [dict(r._mapping) for r in conn.execute(
        select(R.c.code, R.c.name, R.c.level, R.c.parent_code).where(R.c.level.in_(tuple(TIER_LEVEL.values()))))]
    conn.execute(delete(T).where(T.c.source == DEMO_SOURCE))
    kept = set(conn.execute(select(T.c.code)).scalars())
    rows = [{**asdict(u), "source": DEMO_SOURCE} for u in demo_units(regions) if u.code not in kept]
    if rows:
        conn.execute(T.insert(), rows)
    return len(rows)


def list_units(conn: Connection, *, tier: int | None = None, region: str | None = None) -> list[dict]:
    q = select(T).order_by(T.c.tier.desc(), T.c.region_code, T.c.code)
    if tier is not None:
        q = q.where(T.c.tier == tier)
    if region:
        q = q.where(T.c.region_code.like(f"{region}%"))
    return [dict(r._mapping) for r in conn.execute(q)]


# --- import from a file ------------------------------------------------------------------------------

def _yaml_rows(path, text) -> list[tuple[int, dict, dict]]:
    """(line, {column: text}, {column: line}) of a YAML file: ``units:`` a list of mappings."""
    rd = Reader(path)

    def fail(node, message):
        return UnitFileError(path, node.start_mark.line + 1, message)

    root = compose(path, text, UnitFileError)
    if root is None:
        raise UnitFileError(path, None, "the file is empty")
    try:
        top = rd.mapping(root, "the file", required=("units",))
        out = []
        for node in rd.sequence(top["units"], "units"):
            m = rd.mapping(node, "a unit", required=COLUMNS, optional=OPTIONAL)
            row, lines = {}, {}
            for k, v in m.items():
                if not isinstance(v, yaml.ScalarNode):
                    raise fail(v, f"{k} must be a single value")
                if k == "active" and v.tag != BOOL:
                    raise fail(v, f"active must be true or false, not {v.value!r}")
                row[k] = v.value
                lines[k] = v.start_mark.line + 1
            out.append((node.start_mark.line + 1, row, lines))
        return out
    except FileError as exc:
        if isinstance(exc, UnitFileError):
            raise
        raise UnitFileError(exc.path, exc.line, exc.problem) from None


def _csv_rows(path, text) -> list[tuple[int, dict, dict]]:
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # Excel writes a BOM
        except OSError as exc:
            raise UnitFileError(path, None, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UnitFileError(path, None, f"not UTF-8 text: {exc.reason} (save the sheet as CSV UTF-8)") from None
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UnitFileError(path, None, "the file is empty") from None
    for h in header:
        if h not in COLUMNS + OPTIONAL:
            raise UnitFileError(path, 1, f"unknown column {h!r} (columns: {', '.join(COLUMNS + OPTIONAL)})")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UnitFileError(path, 1, f"missing column {missing[0]!r}")
    if len(set(header)) != len(header):
        raise UnitFileError(path, 1, "a column is named twice")
    out = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise UnitFileError(path, line, f"{len(values)} values for {len(header)} columns")
        out.append((line, {h: v.strip() for h, v in zip(header, values) if h in OPTIONAL and v.strip() or h in COLUMNS},
                    {}))
    return out


def read_units(path: Path | str, conn: Connection, text: str | None = None,
               taxonomy: tx.Taxonomy | None = None) -> list[Unit]:
    """The units a file describes, checked against the taxonomy and the store's regions and units."""
    tax = taxonomy or tx.load()
    suffix = Path(str(path)).suffix.lower()
    if suffix in (".yaml", ".yml"):
        rows = _yaml_rows(path, text)
    elif suffix == ".csv":
        rows = _csv_rows(path, text)
    else:
        raise UnitFileError(path, None, "a units file is .csv or .yaml")
    if not rows:
        raise UnitFileError(path, None, "the file holds no units")
    levels = dict(conn.execute(select(R.c.code, R.c.level)).all())
    stored = set(conn.execute(select(T.c.code)).scalars())
    seen: dict[str, int] = {}
    units = []
    for line, row, lines in rows:
        def fail(message, column=None):
            return UnitFileError(path, lines.get(column, line), message)

        code = row["code"]
        if not CODE.match(code):
            raise fail(f"code {code!r} must be 1-32 characters of A-Z a-z 0-9 _ . : -", "code")
        if code in seen:
            raise fail(f"unit {code} is given twice (first on line {seen[code]})", "code")
        seen[code] = lines.get("code", line)
        for k in ("name_zh", "name_en"):
            if not row[k] or len(row[k]) > 128:
                raise fail(f"unit {code}: {k} must be 1-128 characters", k)
        if row["tier"] not in ("1", "2", "3"):
            raise fail(f"unit {code}: unknown tier {row['tier']!r} (tiers are 1 district, 2 street, 3 community)", "tier")
        tier = int(row["tier"])
        ut = tax.unit_types.get(row["unit_type"])
        if ut is None:
            raise fail(f"unit {code}: unknown unit_type {row['unit_type']!r} (one of {', '.join(tax.unit_types)})",
                       "unit_type")
        if ut.tier != tier:
            raise fail(f"unit {code}: unit_type {ut.code!r} is a tier-{ut.tier} unit, the unit is tier {tier}",
                       "unit_type")
        region = row["region_code"]
        if region not in levels:
            raise fail(f"unit {code}: unknown region {region!r} (not in the store's regions)", "region_code")
        if levels[region] != TIER_LEVEL[tier]:
            raise fail(f"unit {code}: region {region} is a {levels[region]}; a tier-{tier} unit serves a "
                       f"{TIER_LEVEL[tier]}", "region_code")
        active = row.get("active", "true").lower()
        if active not in ("true", "false", "yes", "no", "1", "0"):
            raise fail(f"unit {code}: active must be true or false, not {row['active']!r}", "active")
        units.append((lines.get("parent_code", line), Unit(code, row["name_zh"], row["name_en"], tier, ut.code, region,
                                 row.get("parent_code") or None, active in ("true", "yes", "1"))))
    for line, u in units:
        if u.parent_code is not None and u.parent_code not in seen and u.parent_code not in stored:
            raise UnitFileError(path, line, f"unit {u.code}: parent {u.parent_code!r} is not a unit (in the file "
                                            "or the store)")
        if u.parent_code == u.code:
            raise UnitFileError(path, line, f"unit {u.code}: a unit cannot be its own parent")
    return [u for _, u in units]


def import_units(conn: Connection, path: Path | str, *, source: str | None = None,
                 text: str | None = None) -> tuple[int, int]:
    """Add or update the file's units (all or nothing). Returns (added, updated)."""
    units = read_units(path, conn, text)
    src = (source or f"import:{Path(str(path)).name}")[:64]
    stored = set(conn.execute(select(T.c.code)).scalars())
    added = updated = 0
    for u in units:
        values = {**asdict(u), "source": src}
        if u.code in stored:
            conn.execute(update(T).where(T.c.code == u.code).values(**values))
            updated += 1
        else:
            conn.execute(T.insert().values(**values))
            added += 1
    return added, updated
