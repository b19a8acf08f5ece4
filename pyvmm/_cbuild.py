"""The one gcc-into-cache helper: build a C file into pyvmm's cache once, atomically.

Used for the compiled run loop (``fastloop.c``) and the bench's native helpers
(``bench/native.c``); both include ``pyvmm/hypercall_exit.h``. The cache key is
the CRC of the source and of that header, so editing either rebuilds. Concurrent
first runs each build into a temporary file and one ``rename`` wins.
"""

from __future__ import annotations

import os
import zlib

from pyvmm.guest import cache_root, unusable_cache

_PYVMM_DIR = os.path.dirname(os.path.abspath(__file__))
_HEADER = os.path.join(_PYVMM_DIR, "hypercall_exit.h")


class CBuildError(Exception):
    """gcc is missing or the source does not build; the message is one line saying which."""


def _key(source: str) -> str:
    crc = 0
    for path in (source, _HEADER):
        with open(path, "rb") as f:
            crc = zlib.crc32(f.read(), crc)
    return f"{crc:08x}"


def shared_library(source: str, name: str) -> str:
    """Path of *source* built as ``<cache>/<stem>-<key>/<name>.so``, building it first if needed.

    Raises :class:`CBuildError`.
    """
    stem = os.path.splitext(os.path.basename(source))[0]
    out = os.path.join(cache_root(), f"{stem}-{_key(source)}", f"{name}.so")
    if os.path.isfile(out):
        return out
    import shutil
    import subprocess
    import tempfile

    if shutil.which("gcc") is None:
        raise CBuildError(f"gcc is needed to build {stem}.c: install it (e.g. apt-get install gcc)")
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(out))
    except OSError as e:
        raise CBuildError(unusable_cache(os.path.dirname(out), e)) from None
    os.close(fd)
    try:
        cmd = ["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror", f"-I{_PYVMM_DIR}", "-o", tmp, source]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CBuildError(f"building {stem}.c failed: {last}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
