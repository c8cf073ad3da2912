"""The fault suite: parts of the system die under load, and nothing is lost or doubled.

Each test prints what it counted (``lost=0 doubled=0 ...``; shown with ``-s`` and carried in the
assertion messages). CI runs the short variants; ``FAULTS_LONG=1`` (or ``--faults-long``) runs
the long ones (e.g. 100,000 messages instead of 20,000).
"""
from __future__ import annotations

import os

import pytest

from .procs import Procs


def pytest_addoption(parser):
    parser.addoption("--faults-long", action="store_true", default=False,
                     help="run the fault suite's long variants (also: FAULTS_LONG=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: kills, restarts or floods a part of the system (tests/faults)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def long_run(request) -> bool:
    # the option exists when tests/faults is named on the command line (its conftest loads first)
    return bool(request.config.getoption("--faults-long", default=False) or os.environ.get("FAULTS_LONG") == "1")


@pytest.fixture
def procs():
    """Servers and processes started by the test; all killed at teardown, even on failure."""
    p = Procs()
    yield p
    p.kill_all()

