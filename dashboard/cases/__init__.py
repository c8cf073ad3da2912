"""The case engine's foundations: the taxonomy as data, the working calendar, the case and
hazard cycles as state machines (docs/cases.md).

Pure modules: nothing here reads the store or Redis, so the consumer, the simulator, the
KPIs and the dispatch console can share the same rules. Importing the package imports
nothing else: ``dashboard.domain`` loads the taxonomy from here at start.
"""
