"""The briefing's one error type: something the user can fix, said in one line."""
from __future__ import annotations


class BriefingError(Exception):
    """An unknown scope, a week in the future, no usable font..."""
