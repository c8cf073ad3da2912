"""Import a boundary file into the region table, in one transaction.

See the package docstring for the rules (what is an error, what a warning,
what --strict and --dry-run do). ``import_file`` raises ``BoundaryError`` for
file-level problems (unreadable, no CRS, no code field); everything else ends
in the returned ``ImportResult``.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..domain import CODE_WIDTH, LEVELS
from .reader import BoundaryError, read_boundary
from .validate import ERROR, INFO, WARNING, check_features, check_overlaps, dissolve, entry

_ZH = {"district": "区", "street": "街道", "community": "社区", "grid": "网格", "micro": "微网格"}


@dataclass
class ImportResult:
    path: str
    level: str
    ok: bool = False
    dry_run: bool = False
    strict: bool = False
    features: int = 0           # features in the file
    imported: int = 0           # file features written (or that would be, in a dry run)
    excluded: int = 0           # file features kept out by an error
    parents_built: int = 0      # missing parents dissolved from the features
    inserted: int = 0
    updated: int = 0
    source: str = ""
    source_crs: str = ""
    encoding: str | None = None
    fields: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    refused: str = ""           # why nothing was written, when ok is False

    @property
    def errors(self) -> list[dict]:
        return [p for p in self.problems if p["severity"] in (ERROR, "fatal")]

    @property
    def warnings(self) -> list[dict]:
        return [p for p in self.problems if p["severity"] == WARNING]

    def report(self) -> list[dict]:
        """The report for automation: a list of {code, problem, detail, severity, feature}."""
        return [dict(p) for p in self.problems]

    def write_report(self, path) -> None:
        Path(path).write_text(json.dumps(self.report(), ensure_ascii=False, indent=1), encoding="utf-8")

    def summary(self) -> str:
        name = Path(self.path).name
        counts = f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        if not self.ok:
            return f"import refused: {name}: {self.refused} ({counts}); nothing written"
        verb = "would import" if self.dry_run else "imported"
        ins = "would insert" if self.dry_run else "inserted"
        upd = "would update" if self.dry_run else "updated"
        return (f"{verb} {self.imported} of {self.features} {self.level} features from {name} "
                f"({self.source_crs} → WGS-84{', ' + self.encoding if self.encoding else ''}); "
                f"{self.excluded} excluded, {self.parents_built} parents built; "
                f"{self.inserted} {ins}, {self.updated} {upd}; {counts}")


def default_source(path) -> str:
    return f"import:{Path(path).name}"[:64]


def _bar(progress, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=(None if progress is None else not progress),
                leave=False)


def import_file(engine, path, *, layer: str | None = None, encoding: str | None = None, crs: str | None = None,
                gcj02: bool = False, level: str = "grid", fields: dict[str, str] | None = None,
                tolerance: float = 1.0, strict: bool = False, dry_run: bool = False,
                source: str | None = None, progress: bool | None = False) -> ImportResult:
    """Read, validate and upsert a boundary file; one transaction, nothing written on failure."""
    from ..store.regions import RegionRow, upsert_regions

    if level not in LEVELS or level == "district":
        raise BoundaryError("bad_option", f"cannot import features at level '{level}'", usage=True)
    source = source or default_source(path)
    result = ImportResult(path=str(path), level=level, dry_run=dry_run, strict=strict, source=source)
    steps = _bar(progress, 6, "import")
    try:
        read = read_boundary(path, layer=layer, encoding=encoding, crs=crs, gcj02=gcj02, level=level, fields=fields)
        steps.update()
        result.features = len(read.gdf)
        result.source_crs, result.encoding, result.fields = read.source_crs, read.encoding, dict(read.fields)
        feats = check_features(read.gdf, read.fields, level)
        steps.update()
        with engine.begin() as conn:
            existing = _existing(conn, feats, level)
            _check_against_store(feats, existing, level)
            check_overlaps(feats, tolerance)
            steps.update()
            unions = dissolve(feats, tolerance)
            steps.update()
            included = [i for i in feats.included if feats.geoms[i] is not None]
            rows = _feature_rows(feats, included, level, source, RegionRow)
            parents = _parent_rows(feats, included, unions, existing, source, tolerance, RegionRow)
            result.problems = _ordered(read.notes + feats.problems)
            result.excluded = int(feats.excluded.sum())
            problems = [p for p in result.problems if p["severity"] != INFO]
            if strict and problems:
                result.refused = f"--strict and {len(problems)} problems"
                return result
            if not rows:
                result.refused = "no feature can be imported"
                return result
            result.parents_built = len(parents)
            result.imported = len(rows)
            all_rows = parents + rows
            steps.update()
            if dry_run:
                result.inserted = sum(1 for r in all_rows if r.code not in existing)
                result.updated = len(all_rows) - result.inserted
            else:
                result.inserted, result.updated = _write(conn, all_rows, upsert_regions, progress)
            steps.update()
            result.ok = True
            return result
    finally:
        steps.close()


def _ordered(problems: list[dict]) -> list[dict]:
    rank = {"fatal": 0, ERROR: 1, WARNING: 2, INFO: 3}
    return sorted(problems, key=lambda p: (rank.get(p["severity"], 9),
                                           p["feature"] if p["feature"] is not None else -1, p["code"] or ""))


def _existing(conn, feats, level: str) -> dict[str, dict]:
    """Rows already in the store for the file's codes and all their ancestors."""
    from sqlalchemy import select

    from ..store.schema import region

    codes = set()
    for c in feats.codes:
        if c and c.isdigit() and len(c) == CODE_WIDTH[level]:
            codes.add(c)
            for anc in LEVELS[:LEVELS.index(level)]:
                codes.add(c[:CODE_WIDTH[anc]])
    codes = sorted(codes)
    out = {}
    stmt = select(region.c.code, region.c.level, region.c.source, region.c.name)
    for i in range(0, len(codes), 900):
        for row in conn.execute(stmt.where(region.c.code.in_(codes[i:i + 900]))).mappings():
            out[row["code"]] = dict(row)
    return out


def _check_against_store(feats, existing: dict, level: str) -> None:
    for i in feats.included:
        code = feats.codes[i]
        row = existing.get(code)
        if row is not None and row["level"] != level:
            feats.exclude(i, "level_conflict", f"code {code} is already a {row['level']} in the store, "
                          f"not a {level}")
            continue
        for anc in LEVELS[:LEVELS.index(level)]:
            pcode = code[:CODE_WIDTH[anc]]
            prow = existing.get(pcode)
            if prow is not None and prow["level"] != anc:
                feats.exclude(i, "code_parent_mismatch", f"code {code} does not fit its parent: {pcode} is a "
                              f"{prow['level']} in the store, not a {anc}")
                break


def _feature_rows(feats, included, level, source, RegionRow) -> list:
    pw = CODE_WIDTH[LEVELS[LEVELS.index(level) - 1]]
    zh = _ZH[level]
    return [RegionRow(code=feats.codes[i], name=(feats.names[i] or f"{zh} {feats.codes[i]}")[:128], level=level,
                      geom=feats.geoms[i], parent_code=feats.codes[i][:pw], kind=feats.kinds[i],
                      households=int(feats.households[i]), population=int(feats.population[i]), source=source)
            for i in included]


def _parent_rows(feats, included, unions, existing, source, tolerance, RegionRow) -> list:
    """Missing ancestors (and those a previous import of this source built), dissolved from the features."""
    level = feats.level
    parent = LEVELS[LEVELS.index(level) - 1]
    out = []
    for anc, groups in unions.items():
        w = CODE_WIDTH[anc]
        up = LEVELS[LEVELS.index(anc) - 1] if anc != "district" else None
        names: dict[str, Counter] = {}
        name_src = feats.parent_names if anc == parent else (feats.street_names if anc == "street" else None)
        hh: Counter = Counter()
        pop: Counter = Counter()
        for i in included:
            pcode = feats.codes[i][:w]
            hh[pcode] += int(feats.households[i])
            pop[pcode] += int(feats.population[i])
            if name_src is not None and name_src[i]:
                names.setdefault(pcode, Counter())[name_src[i]] += 1
        for pcode, geom in groups.items():
            row = existing.get(pcode)
            if row is not None and row["source"] != source:
                continue  # kept as it is: someone else's region
            counter = names.get(pcode)
            if counter:
                name = counter.most_common(1)[0][0]
                if len(counter) > 1:
                    others = ", ".join(n for n, _ in counter.most_common()[1:4])
                    feats.problems.append(entry(pcode, None, "name_conflict",
                                                f"features name {anc} {pcode} differently; '{name}' used "
                                                f"(also: {others})", WARNING))
            else:
                name = f"{_ZH[anc]} {pcode}"
            out.append(RegionRow(code=pcode, name=name[:128], level=anc, geom=geom,
                                 parent_code=pcode[:CODE_WIDTH[up]] if up else None, kind=None,
                                 households=hh[pcode], population=pop[pcode], source=source))
    return out


def _write(conn, rows, upsert_regions, progress) -> tuple[int, int]:
    from tqdm import tqdm

    order = {lv: k for k, lv in enumerate(LEVELS)}
    rows = sorted(rows, key=lambda r: (order[r.level], r.code))
    inserted = updated = 0
    with tqdm(total=len(rows), desc="write", unit="region", leave=False,
              disable=(None if progress is None else not progress)) as bar:
        for k in range(0, len(rows), 1000):
            chunk = rows[k:k + 1000]
            a, b = upsert_regions(conn, chunk)
            inserted += a
            updated += b
            bar.update(len(chunk))
    return inserted, updated

