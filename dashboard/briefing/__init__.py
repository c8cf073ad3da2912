"""The weekly briefing (周报): a week's figures for a district, street or community as charts
(PNG 1×/2×, SVG), a PDF, an XLSX workbook, a read-out summary and a ZIP of them all.

figures.py (the numbers, from dashboard.kpi) → charts.py, hotspots.py (matplotlib) →
summary.py (sentences) → pdf.py (ReportLab), xlsx.py (openpyxl); build.py writes the files,
cli.py is ``python -m dashboard briefing``; the /briefing page is layouts/briefing.py and
callbacks/briefing.py. docs/briefing.md says what each figure means.
"""
from .errors import BriefingError

__all__ = ["BriefingError"]
