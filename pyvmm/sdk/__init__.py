"""The guest SDK shipped in the pyvmm package: build a guest against the ABI outside this tree.

``include/`` holds the generated ABI header (``pyvmm_abi.h``), the generated call wrappers
(``pyvmm_calls.h``; both checked against :mod:`pyvmm.paravirt.abi` by the tests) and
``pyvmm_guest.h``; ``crt0.S`` is the entry, ``guest.ld`` the link script, ``libpyvmm.c``
the tiny C library. ``pyvmm sdk --cflags/--ldflags/--sources`` print what to pass to gcc;
``pyvmm new DIR`` writes a hello-world guest with a Makefile.
"""

from __future__ import annotations

import os
import shlex
import shutil

SDK_DIR = os.path.dirname(os.path.abspath(__file__))
INCLUDE_DIR = os.path.join(SDK_DIR, "include")
TEMPLATE_DIR = os.path.join(SDK_DIR, "template")

# The bundled kernel's flags (guest-kernel/Makefile), for the same reasons: no SSE/x87 and no
# red zone (the code suits VT-x/AMD-V and KVM's instruction emulator alike), no libc.
_CFLAGS = (
    "-O2 -std=gnu11 -ffreestanding -fno-pic -fno-pie -nostdlib -mgeneral-regs-only -mno-red-zone "
    "-mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none -Wall"
)
_LDFLAGS = (
    "-nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack "
    "-Wl,--no-warn-rwx-segments"
)


class SdkError(Exception):
    """``pyvmm new`` cannot write where asked; the message is one line."""


def cflags() -> str:
    return f"{_CFLAGS} -I{shlex.quote(INCLUDE_DIR)}"


def ldflags() -> str:
    return f"{_LDFLAGS} -Wl,-T,{shlex.quote(os.path.join(SDK_DIR, 'guest.ld'))}"


def sources() -> str:
    return " ".join(shlex.quote(os.path.join(SDK_DIR, name)) for name in ("crt0.S", "libpyvmm.c"))


def new_project(directory: str) -> list[str]:
    """Write the hello-world guest (``hello.c``, ``Makefile``) into *directory*, created if
    needed; returns the files written. Raises :class:`SdkError` rather than overwrite."""
    names = sorted(os.listdir(TEMPLATE_DIR))
    taken = [n for n in names if os.path.lexists(os.path.join(directory, n))]
    if taken:
        raise SdkError(f"{os.path.join(directory, taken[0])} already exists: pyvmm new overwrites nothing")
    try:
        os.makedirs(directory, exist_ok=True)
        written = []
        for name in names:
            shutil.copyfile(os.path.join(TEMPLATE_DIR, name), os.path.join(directory, name))
            written.append(os.path.join(directory, name))
    except OSError as e:
        raise SdkError(f"cannot write {directory}: {e.strerror}") from None
    return written
