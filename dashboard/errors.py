"""Errors shared by the command line and the modules it calls.

Its own module, imported by ``dashboard.cli`` and by the modules that raise it
(``boundary/cli``, ``demo/seed``, ``feed/simulate``), so none of them imports
the command line back.
"""
from __future__ import annotations


class CliError(Exception):
    """An error worth one clear line to the user (exit status 2)."""
