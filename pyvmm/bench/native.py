"""The bench's native helpers (``native.c``): built with gcc into the cache on first use.

Loaded with ctypes, whose calls release the GIL, so a C loop in ``KVM_RUN``
lets other threads run exactly as pyvmm's own loop does.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import zlib
from functools import cache
from pathlib import Path

from pyvmm.guest import cache_root

SOURCE = Path(__file__).with_name("native.c")


class NativeBuildError(Exception):
    """gcc is missing or the helper does not build; the message says which."""


def _build() -> Path:
    src = SOURCE.read_bytes()
    out = Path(cache_root()) / f"bench-native-{zlib.crc32(src):08x}" / "libpyvmmbench.so"
    if out.is_file():
        return out
    if shutil.which("gcc") is None:
        raise NativeBuildError("gcc is needed to build the C baseline: install it (e.g. apt-get install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise NativeBuildError(f"building the C baseline failed: {last}")
        os.replace(tmp, out)  # atomic: concurrent first runs each build, one wins
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@cache
def native() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_build()))
    lib.pyvmm_null_loop.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_ulong))
    lib.pyvmm_null_loop.restype = ctypes.c_long
    lib.pyvmm_syscall_loop.argtypes = (ctypes.c_ulong, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint32))
    lib.pyvmm_syscall_loop.restype = None
    return lib
