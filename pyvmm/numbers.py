"""Strict parsing of the numbers on pyvmm's command line: ASCII digits only.

Python's ``int()`` and ``float()`` also take other scripts' digits (``int("٦٤")``
is 64), ``_`` separators, surrounding whitespace and, for floats, ``inf`` and
``nan``. None of that is a number a user meant to type into ``--vcpus`` or
``--timeout``; each parser here raises ``ValueError`` with the one line to show.
"""

from __future__ import annotations

import math
import re

_INT_RE = re.compile(r"[0-9]+", re.ASCII)
_FLOAT_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def ascii_int(text: str) -> int:
    """A non-negative decimal integer written with ASCII digits 0-9."""
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number (digits 0-9)")
    return int(text)


def ascii_float(text: str) -> float:
    """A finite non-negative decimal number (``2``, ``0.5``, ``1e3``) written in ASCII."""
    if not _FLOAT_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a number (digits 0-9, optionally with '.')")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is too large")
    return value
