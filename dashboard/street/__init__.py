"""The street secretary's view (/street): its figures, shaped from dashboard.kpi.

Every figure is a kpi function's (docs/kpi.md); this package only picks the ones the view shows,
divides the district's by its number of units for the "district average", and lists the rows
behind three of them (urgent open events, overdue hazards) that kpi counts but does not list.
Nothing here returns a personal field: no reporter, address or description.
"""
from .data import (  # noqa: F401
    FIGURES, LIST_ROWS, district_average, level_of, unit_figures, view_data,
)
