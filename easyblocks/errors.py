"""Errors a user can act on. The CLI prints them as one line (no traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EasyblocksError(Exception):
    """Base class: an error caused by the user's input, shown without a traceback."""


class ConfigError(EasyblocksError):
    """A problem in a .config file; the message names the file, line, block or field."""


class DataError(EasyblocksError):
    """A problem in an input data file; the message names the file and line."""


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Returns ' (did you mean: a, b?)' for close matches of name, or ''."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n)]
    return f" (did you mean: {', '.join(close)}?)" if close else ""
