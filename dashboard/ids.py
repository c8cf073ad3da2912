"""Component ids, in one place (layouts and callbacks import them from here)."""

URL = "url"
PAGE = "page"
ROUTED = "routed"      # Store: the path + query the server already rendered into the first layout
ROUTE = "route"        # Store: a path + query the page must fetch from the server

# --- The wall and its map (layouts/wall.py, layouts/map.py) ---
WALL = "wall"
WALL_CONFIG = "wall-config"          # Store: what live.js needs (scope, crs, urls, labels)
LIVE_TICK = "live-tick"              # Store: set from live.js (<= 1/s) when deltas arrive
WALL_CLOCK = "wall-clock"
FEED_STATUS = "feed-status"
FEED_BANNER = "feed-banner"
WALL_LEFT = "wall-left"              # slot for layouts.panels.panels_left
WALL_RIGHT = "wall-right"            # slot for layouts.panels.panels_right
WALL_FIGURES = "wall-figures"        # slot for layouts.panels.header_figures
TICKER = "wall-ticker"
MAP = "wall-map"
MAP_LAYERS = "map-layers"
MAP_GRIDS = "map-grids"
MAP_COVERAGE = "map-coverage"
MAP_COMMUNITIES = "map-communities"
MAP_STREETS = "map-streets"
MAP_EVENTS = "map-events"
MAP_EVENTS_LIVE = "map-events-live"
MAP_HAZARDS = "map-hazards"
MAP_POSITIONS = "map-positions"
MAP_HOUSES = "map-houses"
MAP_KEYPOP = "map-keypop"
MAP_VEHICLES = "map-vehicles"
MAP_FACILITIES = "map-facilities"
MAP_MEASURE = "map-measure"
MAP_VALUES = "map-values"            # Store: per-grid measure arrays (grid-code order)
MAP_LEGEND = "map-legend"
MAP_BREAKS = "map-breaks"            # Store: the legend's class breaks, set only when they change
MAP_BACK = "map-back"
MAP_CRUMBS = "map-crumbs"
MAP_INFO = "map-info"
MAP_REFRESH = "map-refresh"          # Interval: overdue-ness moves with the clock
MAP_INIT = "map-init"                # dummy output of the clientside start call
MAP_SINKS = ("map-sink-values", "map-sink-back")  # outputs of clientside side effects

# --- The wall's panels (layouts/panels.py, callbacks/panels.py) ---
PANEL_HEADER = "panel-header"        # filled with layouts.panels.header_figures
PANEL_UPDATED = "panel-updated"      # when the shown figures were computed
PANEL_LEFT = "panel-left"            # column of layouts.panels.LEFT sections
PANEL_RIGHT = "panel-right"          # column of layouts.panels.RIGHT sections
PANEL_REFRESH = "panel-refresh"      # Interval: re-read as deadlines pass, with no event arriving
PANEL_HASHES = "panel-hashes"        # Store: per panel, a hash of the data this page shows
PANEL_PATCH = "panel-patch"          # Store: new values for panels that kept their shape (dashboard.inplace)
PANEL_PATCHED = "panel-patched"      # Store: output of the clientside patch (assets/panels.js)


def panel(name: str) -> str:
    """The section of one wall panel (layouts.panels.LEFT / RIGHT names), refilled on its own."""
    return f"panel-{name}"


# --- The weekly briefing page (layouts/briefing.py, callbacks/briefing.py) ---
BRIEFING = "briefing"
BRIEFING_FORM = "briefing-form"          # a plain GET form: choosing reloads /briefing?scope=&week=
BRIEFING_REQUEST = "briefing-request"    # Store: {scope, week, lang} the page was opened with
BRIEFING_PREVIEW = "briefing-preview"    # filled with the summary, the charts and the downloads

# --- A3: one record's page (layouts/record.py, callbacks/record.py) and the audit page (layouts/audit.py) ---
RECORD = "record"
RECORD_REQUEST = "record-request"        # Store: {kind, id, scope} the page was opened for
RECORD_FIELDS = "record-fields"          # the record's fields, masked until revealed
RECORD_REVEAL = "record-reveal"          # button: show in full (audited)
RECORD_NOTE = "record-note"              # what the page did (revealed and audited, or refused)
AUDIT = "audit"
AUDIT_FORM = "audit-form"                # a plain GET form: filters reload /audit?actor=&action=&since=&until=
AUDIT_GRID = "audit-grid"                # dash-ag-grid: the rows, with column filters in the browser

# --- A2: the street secretary's view (layouts/street.py, callbacks/street.py, assets/street.js) ---
STREET = "street"
STREET_DRILL = "street-drill"            # Store: the unit the panels show (street, community or grid code)
STREET_HASHES = "street-hashes"          # Store: per panel, a hash of what this page shows
STREET_REFRESH = "street-refresh"        # Interval: overdue-ness moves with the clock
STREET_UPDATED = "street-updated"        # when the shown figures were computed
STREET_UNIT = "street-unit"              # Elements: the unit's name and level, above its figures
STREET_FIGURES = "street-figures"        # Elements: the unit's figures beside the district's average
STREET_RANKING = "street-ranking"        # Elements: the units one level below, worst first
STREET_EVENTS = "street-events"          # Elements: overdue, urgent and due-soon open events
STREET_HAZARDS = "street-hazards"        # Elements: hazards past their rectification deadline
STREET_PANELS = (STREET_UNIT, STREET_FIGURES, STREET_RANKING, STREET_EVENTS, STREET_HAZARDS)

# --- C3: the wall's header warns of a holiday year the calendar does not know (layouts/wall.py) ---
WALL_CALENDAR = "wall-calendar"
