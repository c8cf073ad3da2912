"""Dash callbacks: one ``register(app, services)`` per module."""
