"""The bench's native helpers (``native.c``): built with gcc into the cache on first use.

Loaded with ctypes, whose calls release the GIL, so a C loop in ``KVM_RUN``
lets other threads run exactly as pyvmm's own loop does.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native.c")


class NativeBuildError(Exception):
    """gcc is missing or the helper does not build; the message says which."""


@cache
def native() -> ctypes.CDLL:
    from pyvmm._cbuild import CBuildError, shared_library

    try:
        lib = ctypes.CDLL(shared_library(SOURCE, "libpyvmmbench"))
    except CBuildError as e:
        raise NativeBuildError(str(e)) from None
    lib.pyvmm_null_loop.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_ulong))
    lib.pyvmm_null_loop.restype = ctypes.c_long
    lib.pyvmm_syscall_loop.argtypes = (ctypes.c_ulong, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint32))
    lib.pyvmm_syscall_loop.restype = None
    return lib
