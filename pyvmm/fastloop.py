"""Build and load the compiled run loop (``fastloop.c``), or say why not.

The library is built with gcc into pyvmm's cache the first time a VM runs
(keyed by the source's CRC, as the guest kernel is) and loaded once per
process. Where it cannot be built (no gcc) or ``PYVMM_LOOP=python`` is set,
:func:`library` returns None and the Python loop runs instead; both loops
handle every exit the same way.
"""

from __future__ import annotations

import ctypes
import os
import zlib
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


def _build(src: bytes, out: str) -> bool:
    import shutil
    import subprocess
    import tempfile

    if shutil.which("gcc") is None:
        return False
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(out))
    os.close(fd)
    try:
        cmd = ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-o", tmp, SOURCE]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return False
        os.replace(tmp, out)  # atomic: concurrent first runs each build, one wins
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@cache
def library() -> ctypes.CDLL | None:
    """The loaded loop library, or None (use the Python loop)."""
    if os.environ.get("PYVMM_LOOP") == "python":
        return None
    from pyvmm.guest import cache_root

    with open(SOURCE, "rb") as f:
        src = f.read()
    out = os.path.join(cache_root(), f"fastloop-{zlib.crc32(src):08x}", "libpyvmmloop.so")
    if not os.path.isfile(out) and not _build(src, out):
        return None
    lib = ctypes.CDLL(out)
    fn = lib.pyvmm_run_loop
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, DISPATCH_FN, ctypes.POINTER(ctypes.c_int))
    fn.restype = ctypes.c_long
    return lib
