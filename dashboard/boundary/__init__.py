"""Boundary files in and out: ``import-grids`` and ``export-regions``.

Import (``importer.import_file(engine, path, **options) -> ImportResult``)
--------------------------------------------------------------------------
Reads GeoJSON, Shapefile (plain, or zipped) and GeoPackage (``layer=``) with
pyogrio, in any CRS pyproj knows (CGCS2000 EPSG:4490 and its Gauss-Krüger
zones EPSG:4513-4554 included), reprojected to WGS-84; ``gcj02=True`` undoes
the GCJ-02 shift afterwards. Shapefile attributes are decoded with the
``.cpg`` when it names a codec, else as UTF-8 when the DBF decodes as UTF-8,
else as GBK (``encoding=`` overrides). Fields are found by ``fields={role:
name}`` or by their common Chinese/English names (``reader.role_candidates``).

Every feature is either imported or named in the report, one entry per problem
per feature: ``{code, problem, detail, severity, feature}`` (code is the
feature's code, or ``#index`` when it has none; ``feature`` its 0-based
position in the file; gaps and name conflicts are named by the parent code).

Severity decides what happens without ``strict``:

* ``error`` - the feature is NOT imported, the rest is:
  ``empty_geometry`` (null or empty), ``not_polygon`` (mixed geometry types),
  ``missing_code``, ``bad_code`` (non-digit, wrong width for the level),
  ``duplicate_code`` (every copy is excluded: which one is right is not ours
  to guess), ``code_parent_mismatch`` (the parent-code field disagrees with
  the code's prefix, or the prefix is a region of another level in the store),
  ``level_conflict`` (the code is a region of another level in the store),
  ``invalid_geometry`` when make_valid leaves no area.
* ``warning`` - imported as repaired / as is: ``invalid_geometry`` (repaired
  with ``shapely.make_valid``, polygonal parts kept), ``overlap`` (with a
  neighbour, above ``tolerance`` m²), ``gap`` (a hole inside the union of the
  features under one parent that no feature covers, above the tolerance),
  ``unknown_kind``, ``bad_number`` (0 stored), ``name_conflict``.
* ``info`` - about the file, never a problem: ``unknown_field`` (ignored
  fields), ``crs_overridden`` (``crs=`` given for a file that declares
  another CRS: the option wins), ``reader_note`` (GDAL's remarks while reading).

``strict=True``: any error or warning refuses the whole import (nothing
written, ``ok`` False). An import where no feature survives is refused too.
File-level problems (not a boundary file, a zip with no .shp, no CRS and no
``crs=``, no code field, coordinates that are not lon/lat after reprojection)
raise ``reader.BoundaryError`` before anything is touched.

Parents: a file of one level builds the missing ancestors from the codes
(community = code[:12], street = code[:9], district = code[:6]) by dissolving
the imported features (holes up to the tolerance dropped); names come from
the parent-name / street-name fields (most common value) or are generated
("社区 370202001001"); households and population are the sums. Ancestors
already in the store are kept untouched unless their ``source`` is this
import's source (``import:<file name>``), in which case they are rebuilt.

The whole import is one transaction (``engine.begin()``): any exception
leaves the store as it was. Re-import is idempotent (upsert by code: the
second run updates what the first inserted). ``dry_run=True`` validates and
counts what would be inserted / updated, and writes nothing.

CLI exit status (``python -m dashboard import-grids``): 0 imported (possibly
with features excluded by errors: the report lists them), 1 refused or
failed (strict problems, nothing importable, file-level problems), 2 usage
errors (bad options, missing file, unknown layer or field).

Export (``export.export_regions``): one level, optional scope, to GeoJSON,
GeoPackage or Shapefile (UTF-8 with a .cpg), in EPSG:4326, any EPSG CRS, or
GCJ-02, with the properties code, name, level, kind, parent_code,
households, population.

geopandas is imported inside the functions, so importing this package is cheap.
"""
