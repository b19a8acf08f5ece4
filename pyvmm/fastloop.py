"""Build and load the compiled run loop (``fastloop.c``), or say why not.

The library is built with gcc into pyvmm's cache the first time a VM runs
(keyed by the source's CRC: :mod:`pyvmm._cbuild`) and loaded once per
process. Where it cannot be built (no gcc) or ``PYVMM_LOOP=python`` is set,
:func:`library` returns None and the Python loop runs instead; both loops
handle every exit the same way.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastloop.c")

DISPATCH_FN = ctypes.CFUNCTYPE(
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_uint64,
    ctypes.c_uint64,
)


@cache
def library() -> ctypes.CDLL | None:
    """The loaded loop library, or None (use the Python loop)."""
    if os.environ.get("PYVMM_LOOP") == "python":
        return None
    from pyvmm._cbuild import CBuildError, shared_library

    try:
        lib = ctypes.CDLL(shared_library(SOURCE, "libpyvmmloop"))
    except CBuildError:
        return None
    fn = lib.pyvmm_run_loop
    fn.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        DISPATCH_FN,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_void_p,
    )
    fn.restype = ctypes.c_long
    return lib
