"""The bundled guest kernel: found, built with gcc on first use, cached by content.

The cache key comes from every source file's name, size and mtime (the Makefile
included), so editing the guest rebuilds it and nothing else does. ``make -C guest-kernel`` still works
by hand; this module only calls the same Makefile with ``BUILD=<cache dir>``.
"""

from __future__ import annotations

import os
import zlib

# Paths are plain strings here: pathlib's import (it pulls in urllib and ipaddress)
# would cost more than a tenth of a whole boot.


class GuestBuildError(Exception):
    """The bundled guest cannot be built; the message says what to install or fix."""


def source_dir() -> str:
    """``guest-kernel/`` of a checkout, or the copy shipped inside the wheel."""
    here = os.path.dirname(os.path.realpath(__file__))
    for candidate in (os.path.join(os.path.dirname(here), "guest-kernel"), os.path.join(here, "_guest_kernel")):
        if os.path.isfile(os.path.join(candidate, "Makefile")):
            return candidate
    raise GuestBuildError("the bundled guest kernel sources are missing from this installation")


def _fingerprint(src: str) -> str:
    """A cache key from every source file's name, size and modification time.

    Stat only, no reads: this runs on every boot (hashing the contents took
    6 ms). Any edit, checkout or copy changes a size or an mtime, so it rebuilds.
    """
    entries = []
    skip = len(src) + 1  # the path relative to src, without relpath's cost
    stack = [src]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "build":
                        stack.append(entry.path)
                elif entry.is_file():
                    st = entry.stat()
                    entries.append(f"{entry.path[skip:]}\0{st.st_size}\0{st.st_mtime_ns}")
    entries.sort()
    blob = "\n".join(entries).encode()
    return f"{zlib.crc32(blob):08x}{len(entries):04x}"


def cache_root() -> str:
    """``$PYVMM_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyvmm`` or ``~/.cache/pyvmm``."""
    return os.environ.get("PYVMM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pyvmm"
    )


def unusable_cache(path: str, e: OSError) -> str:
    """The one line saying the cache directory cannot be used, and how to choose another."""
    return (
        f"the cache directory {path} cannot be used ({e.strerror or e}): "
        "set PYVMM_CACHE_DIR (or XDG_CACHE_HOME) to a writable directory"
    )


def _build_dir(parent: str) -> str:
    """A fresh temporary directory in *parent* (created if needed); raises :class:`GuestBuildError`."""
    import tempfile

    try:
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix="build-", dir=parent)
    except OSError as e:
        raise GuestBuildError(unusable_cache(parent, e)) from None


def bundled_kernel_debug() -> str:
    """The bundled kernel with its DWARF (``-g``) for gdb: the image :func:`bundled_kernel` boots,
    plus line tables and frames."""
    return os.path.join(os.path.dirname(bundled_kernel()), "kernel.debug.elf")


def bundled_kernel(*, quiet: bool = False) -> str:
    """Path of the built bundled kernel ELF, building it first if needed."""
    src = source_dir()
    out_dir = os.path.join(cache_root(), f"guest-{_fingerprint(src)}")
    elf = os.path.join(out_dir, "kernel.elf")
    if os.path.isfile(elf):
        return elf
    import shutil
    import subprocess

    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise GuestBuildError(
                f"{tool} is needed to build the bundled guest kernel: install it (e.g. apt-get install gcc make)"
            )
    tmp = _build_dir(os.path.dirname(out_dir))
    try:
        proc = subprocess.run(
            ["make", "-s", "-C", src, f"BUILD={tmp}", "CC=gcc"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise GuestBuildError(f"building the bundled guest kernel failed: {last}")
        try:
            os.rename(tmp, out_dir)  # atomic: concurrent first runs each build, one wins
        except OSError as e:
            if not os.path.isfile(elf):
                raise GuestBuildError(unusable_cache(os.path.dirname(out_dir), e)) from None
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return elf
