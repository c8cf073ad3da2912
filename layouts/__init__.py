"""Pure layout functions: data in, component tree out (ids from dashboard.ids)."""
