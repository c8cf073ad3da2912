"""Reading a boundary file: any OGR format, CRS and attribute encoding, into WGS-84.

``read_boundary`` opens GeoJSON, Shapefile (plain or zipped) and GeoPackage
with pyogrio, works out the attribute encoding of shapefiles (the .cpg, else
whether the DBF decodes as UTF-8, else GBK), reprojects to EPSG:4326, undoes
GCJ-02 on request, and recognises the fields that carry each role (code,
name, ...). File-level problems raise ``BoundaryError`` with a message that
names the problem; per-feature problems are the validator's business.
"""
from __future__ import annotations

import codecs
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..domain import CODE_WIDTH, LEVELS


class BoundaryError(ValueError):
    """A file-level problem: the import cannot start.

    ``problem`` is a stable identifier (as in the report); ``usage`` marks
    problems with the options themselves (the CLI exits 2 for those, 1 else).
    """

    def __init__(self, problem: str, message: str, *, usage: bool = False):
        super().__init__(message)
        self.problem = problem
        self.usage = usage

    def entry(self) -> dict:
        return {"code": None, "problem": self.problem, "detail": str(self), "severity": "fatal", "feature": None}


ROLES = ("code", "name", "parent_code", "parent_name", "street_name", "kind", "households", "population")

_ZH = {"district": "区", "street": "街道", "community": "社区", "grid": "网格", "micro": "微网格"}
_ABBR = {"district": "Q", "street": "JD", "community": "SQ", "grid": "WG", "micro": "WWG"}


def parent_level(level: str) -> str | None:
    i = LEVELS.index(level)
    return LEVELS[i - 1] if i > 0 else None


def role_candidates(level: str) -> dict[str, list[str]]:
    """Field names recognised for each role, most specific first (compared case-insensitively,
    ignoring spaces, underscores and hyphens)."""
    p, a = _ZH[level], _ABBR[level]
    par = parent_level(level) or "district"
    pp, pa = _ZH[par], _ABBR[par]
    return {
        "code": [f"{p}编码", f"{p}代码", f"{p}编号", f"{p}ID", f"{level}_code", f"{level}code", f"{a}BM", f"{a}DM",
                 "编码", "代码", "编号", "code", "region_code", "BM", "DM"],
        "name": [f"{p}名称", f"{p}名", f"{level}_name", f"{level}name", f"{a}MC", "名称", "名字", "name", "MC"],
        "parent_code": [f"所属{pp}编码", f"所属{pp}代码", f"{pp}编码", f"{pp}代码", f"{pp}编号", "上级编码",
                        "上级代码", "父级编码", "parent_code", "parentcode", "parent", f"{par}_code", f"{pa}BM",
                        f"SS{pa}BM"],
        "parent_name": [f"所属{pp}", f"所属{pp}名称", f"{pp}名称", f"{pp}名", pp, "上级名称", "parent_name",
                        f"{par}_name", par, f"{pa}MC", f"SS{pa}"],
        "street_name": ["所属街道", "所属街道名称", "街道名称", "街道", "所属街道办", "街道办", "所属乡镇街道",
                        "乡镇街道", "street_name", "street", "JDMC", "SSJD"],
        "kind": [f"{p}类型", f"{p}类别", "网格类型", "网格类别", "类型", "类别", "kind", "type", f"{level}_type",
                 "grid_type", f"{a}LX", "LX"],
        "households": ["户数", "总户数", "住户数", "居民户数", "households", "household", "hh", "HS", "HUSHU"],
        "population": ["人口", "人口数", "总人口", "实有人口", "常住人口", "人数", "居民人数", "population", "pop",
                       "RK", "RKS", "RENKOU"],
    }


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def recognise_fields(columns: list[str], level: str, explicit: dict[str, str] | None = None) -> dict[str, str]:
    """Role -> column. ``explicit`` mappings win; each column serves at most one role."""
    explicit = dict(explicit or {})
    for role, col in explicit.items():
        if role not in ROLES:
            raise BoundaryError("bad_option", f"unknown field role '{role}' (roles: {', '.join(ROLES)})", usage=True)
        if col not in columns:
            raise BoundaryError("bad_option", f"--field {role}={col}: no such field; the file has: "
                                f"{', '.join(columns) or '(no attribute fields)'}", usage=True)
    out = dict(explicit)
    used = set(out.values())
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    cands = role_candidates(level)
    for role in ROLES:
        if role in out:
            continue
        if role == "street_name" and parent_level(level) == "street":
            continue  # the direct parent is the street: parent_name carries its name
        for cand in cands[role]:
            col = by_norm.get(_norm(cand))
            if col is not None and col not in used:
                out[role] = col
                used.add(col)
                break
    return out


# --- Encoding ----------------------------------------------------------------

def _codec(name: str) -> str | None:
    name = name.strip().strip("\x00").strip()
    if not name:
        return None
    m = re.fullmatch(r"(?:ansi\s*)?(\d{3,5})", name, re.I)
    if m:
        num = m.group(1)
        name = {"65001": "utf-8", "88591": "latin-1", "936": "gbk", "950": "big5"}.get(num, "cp" + num)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _dbf_text(raw: bytes) -> bytes:
    """Field names and record bytes of a DBF (the parts that hold text)."""
    if len(raw) < 32:
        return b""
    header_len = struct.unpack("<H", raw[8:10])[0]
    names = []
    for off in range(32, max(32, header_len - 1), 32):
        if raw[off:off + 1] == b"\r":
            break
        names.append(raw[off:off + 11].split(b"\x00")[0])
    return b" ".join(names) + b" " + raw[header_len:]


def detect_dbf_encoding(cpg: bytes | None, dbf: bytes | None) -> tuple[str, str]:
    """(encoding, how) for a shapefile's attributes: the .cpg when it names a known codec,
    else UTF-8 when the DBF's text decodes as UTF-8, else GBK."""
    if cpg is not None:
        enc = _codec(cpg.decode("ascii", "ignore"))
        if enc:
            return enc, ".cpg"
    if dbf is not None:
        try:
            _dbf_text(dbf).decode("utf-8")
            return "utf-8", "detected"
        except UnicodeDecodeError:
            pass
        try:
            _dbf_text(dbf).decode("gbk")
            return "gbk", "detected"
        except UnicodeDecodeError:
            return "gb18030", "detected"
    return "utf-8", "default"


# --- Opening -----------------------------------------------------------------

@dataclass
class Opened:
    """Where to read from (an OGR path) and what we learnt on the way."""
    ogr_path: str
    layer: str | None
    driver_hint: str
    encoding: str | None = None
    encoding_how: str = ""
    sibling: object = None  # callable(ext) -> bytes | None, for .cpg / .dbf


def _open(path: Path, layer: str | None) -> Opened:
    import pyogrio

    if not path.exists():
        raise BoundaryError("no_such_file", f"{path}: no such file", usage=True)
    if path.is_dir():
        shps = sorted(path.glob("*.shp"))
        if len(shps) == 1:
            path = shps[0]
        else:
            raise BoundaryError("not_a_boundary_file", f"{path} is a folder; name the file to import")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise BoundaryError("not_a_boundary_file", f"{path.name} is not a zip archive") from None
        with zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/") and not n.endswith("/")]
            shps = [n for n in names if n.lower().endswith(".shp")]
            if not shps:
                raise BoundaryError("not_a_boundary_file", f"{path.name} holds no .shp file "
                                    f"(it has: {', '.join(names[:10]) or 'nothing'})")
            if len(shps) > 1:
                pick = [n for n in shps if layer and Path(n).stem == layer]
                if not pick:
                    raise BoundaryError("choose_layer", f"{path.name} holds several shapefiles "
                                        f"({', '.join(Path(n).stem for n in shps)}); choose one with --layer",
                                        usage=True)
                shps = pick
            member = shps[0]
            base = member[:-4]
            lower = {n.lower(): n for n in names}

            def sibling(ext, _zpath=path, _base=base, _lower=lower):
                n = _lower.get((_base + ext).lower())
                if n is None:
                    return None
                with zipfile.ZipFile(_zpath) as z:
                    return z.read(n)
            if lower.get((base + ".dbf").lower()) is None:
                raise BoundaryError("not_a_boundary_file", f"{path.name}: {member} has no .dbf beside it")
        return Opened(f"/vsizip/{path.resolve()}/{member}", None, "ESRI Shapefile", sibling=sibling)
    if suffix == ".shp":
        def sibling(ext, _p=path):
            for cand in (_p.with_suffix(ext), _p.with_suffix(ext.upper())):
                if cand.exists():
                    return cand.read_bytes()
            return None
        return Opened(str(path), None, "ESRI Shapefile", sibling=sibling)
    try:
        layers = pyogrio.list_layers(str(path))
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends
        raise BoundaryError("not_a_boundary_file", f"{path.name} is not a readable boundary file "
                            f"(GeoJSON, Shapefile or GeoPackage): {_first_line(exc)}") from None
    names = [str(x[0]) for x in layers]
    if layer is not None:
        if layer not in names:
            raise BoundaryError("no_such_layer", f"{path.name} has no layer '{layer}' "
                                f"(layers: {', '.join(names) or 'none'})", usage=True)
    elif len(names) > 1:
        spatial = [str(x[0]) for x in layers if x[1] is not None]
        if len(spatial) != 1:
            raise BoundaryError("choose_layer", f"{path.name} has several layers ({', '.join(names)}); "
                                "choose one with --layer", usage=True)
        layer = spatial[0]
    elif not names:
        raise BoundaryError("not_a_boundary_file", f"{path.name} has no layers")
    return Opened(str(path), layer, "")


def _first_line(exc) -> str:
    return str(exc).split("\n")[0].split(";")[0][:200]


@dataclass
class ReadResult:
    gdf: object                    # GeoDataFrame in EPSG:4326 (geometry may hold None / empties)
    fields: dict[str, str]         # role -> column
    columns: list[str]             # all attribute columns
    source_crs: str
    encoding: str | None
    encoding_how: str
    layer: str | None
    notes: list[dict] = field(default_factory=list)  # info entries for the report


def _crs_label(crs) -> str:
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else (crs.name or crs.to_string())[:80]


def read_boundary(path, *, layer: str | None = None, encoding: str | None = None, crs: str | None = None,
                  gcj02: bool = False, level: str = "grid", fields: dict[str, str] | None = None) -> ReadResult:
    import geopandas as gpd
    import pyogrio
    import shapely
    from pyproj import CRS

    if level not in CODE_WIDTH:
        raise BoundaryError("bad_option", f"unknown level '{level}'", usage=True)
    path = Path(path)
    opened = _open(path, layer)
    enc, how = None, ""
    if encoding:
        enc = _codec(encoding)
        if enc is None:
            raise BoundaryError("bad_option", f"unknown encoding '{encoding}'", usage=True)
        how = "--encoding"
    elif opened.driver_hint == "ESRI Shapefile":
        enc, how = detect_dbf_encoding(opened.sibling(".cpg"), opened.sibling(".dbf"))
    user_crs = None
    if crs:
        try:
            user_crs = CRS.from_user_input(crs)
        except Exception:
            raise BoundaryError("bad_option", f"--crs {crs}: not a known coordinate reference system",
                                usage=True) from None
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pyogrio.read_dataframe(opened.ogr_path, layer=opened.layer, encoding=enc, on_invalid="ignore")
    except Exception as exc:
        raise BoundaryError("not_a_boundary_file", f"{path.name} is not a readable boundary file: "
                            f"{_first_line(exc)}") from None
    # the reader's own remarks (unparseable geometries read as null, ...) go to the report, not stderr
    read_notes = [{"code": None, "problem": "reader_note", "severity": "info", "feature": None,
                   "detail": _first_line(w.message)} for w in caught[:5]]
    if not isinstance(df, gpd.GeoDataFrame) or df.geometry.name not in df.columns:
        raise BoundaryError("not_a_boundary_file", f"{path.name} has no geometry column: not a boundary file")
    if len(df) == 0:
        raise BoundaryError("no_features", f"{path.name} has no features")
    notes: list[dict] = read_notes
    if df.crs is None and user_crs is None:
        raise BoundaryError("no_crs", f"{path.name} declares no coordinate reference system; "
                            "give it with --crs (e.g. --crs EPSG:4490 for CGCS2000 lon/lat, "
                            "--crs EPSG:4528 for CGCS2000 Gauss-Krüger zone 40)")
    if user_crs is not None:
        if df.crs is not None and not CRS(df.crs).equals(user_crs):
            notes.append({"code": None, "problem": "crs_overridden", "severity": "info", "feature": None,
                          "detail": f"the file declares {_crs_label(CRS(df.crs))}; --crs {crs} used instead"})
        df = df.set_crs(user_crs, allow_override=True)
    source_crs = _crs_label(CRS(df.crs))
    geo = df.geometry.values
    geoms = shapely.force_2d(np.asarray(geo, dtype=object))
    df = df.set_geometry(gpd.GeoSeries(geoms, index=df.index, crs=df.crs))
    if not CRS(df.crs).equals(CRS.from_epsg(4326)):
        try:
            df = df.to_crs(4326)
        except Exception as exc:
            raise BoundaryError("bad_crs", f"cannot reproject {path.name} from {source_crs} to WGS-84: "
                                f"{_first_line(exc)}") from None
    geoms = np.asarray(df.geometry.values, dtype=object)
    if gcj02:
        from ..geo.coords import gcj02_to_wgs84

        def _undo(coords):
            x, y = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])
        geoms = shapely.transform(geoms, _undo)
        df = df.set_geometry(gpd.GeoSeries(geoms, index=df.index, crs=4326))
    _check_range(geoms, path.name, source_crs)
    columns = [c for c in df.columns if c != df.geometry.name]
    roles = recognise_fields(columns, level, fields)
    if "code" not in roles:
        raise BoundaryError("no_code_field", f"{path.name}: no field holds the {level} code; "
                            f"fields: {', '.join(columns) or '(none)'}; name it with --field code=FIELD")
    unknown = [c for c in columns if c not in roles.values()]
    if unknown:
        notes.append({"code": None, "problem": "unknown_field", "severity": "info", "feature": None,
                      "detail": "ignored fields: " + ", ".join(map(str, unknown))})
    return ReadResult(df.reset_index(drop=True), roles, columns, source_crs, enc, how, opened.layer, notes)


def _check_range(geoms, name: str, source_crs: str) -> None:
    """After reprojection every coordinate must be a real lon/lat; anything else means the
    declared (or given) CRS is not the file's."""
    import shapely

    present = geoms[~shapely.is_missing(geoms)]
    present = present[~shapely.is_empty(present)]
    if len(present) == 0:
        return
    b = shapely.bounds(present)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(b).all(axis=1) & (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
    if not ok.all():
        raise BoundaryError("bad_crs", f"{name}: coordinates are not lon/lat after reprojection from "
                            f"{source_crs}; the file's CRS is probably wrong (a Gauss-Krüger file with a zone "
                            "prefix in its eastings needs the zoned CRS, e.g. EPSG:4528 rather than EPSG:4549)")
