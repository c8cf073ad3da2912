"""Real-time command center for community grid governance (网格化治理)."""

__version__ = "0.1.0"
