"""Landlock, a second wall under the seccomp filter: no file access, no abstract sockets, no signals out.

Seccomp refuses system calls by number; Landlock refuses *access*, whatever call asks for
it, and needs no library (three system calls, through ctypes). :func:`restrict` creates a
ruleset that handles every filesystem right the kernel's Landlock ABI knows, adds no rule
(so none is granted: no file or directory can be opened, created, removed, renamed or
executed by path), on ABI >= 4 every TCP bind/connect right, and on ABI >= 6 scopes
abstract Unix sockets and signals to the domain; then it restricts the calling thread.

Where it falls short, and why seccomp stays the main wall: Landlock applies to the calling
thread and the threads it starts afterwards, not to threads that already exist (the
stream channels' and the console's, started during the build), and before a future ABI
it does not mediate ``connect`` to a *pathname* Unix socket. pyvmm calls it on the main
thread just before the seccomp filter, so every vCPU thread (and whatever a vCPU starts)
runs inside it. A kernel without Landlock (ABI query fails) is not an error.
"""

from __future__ import annotations

import ctypes
import os

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # x86-64
_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS = 38

#: LANDLOCK_ACCESS_FS_* by the ABI that introduced them: EXECUTE..MAKE_SYM (1), REFER (2),
#: TRUNCATE (3), IOCTL_DEV (5).
_FS_BY_ABI = {1: (1 << 13) - 1, 2: 1 << 13, 3: 1 << 14, 5: 1 << 15}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2  # ABI 6


#: What a directory given to :func:`restrict` keeps: read, write, create, remove and rename
#: (within it) regular files; on ABI >= 3 truncate them. For a snapshot directory.
_WRITE_FILE, _READ_FILE, _READ_DIR, _REMOVE_FILE, _MAKE_REG, _TRUNCATE = 1 << 1, 1 << 2, 1 << 3, 1 << 5, 1 << 8, 1 << 14
_RULE_PATH_BENEATH = 1


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is absent or disabled."""
    rc = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(rc), 0)


def restrict(writable_dirs: tuple[int, ...] = ()) -> int:
    """Restrict the calling thread (and the threads it starts) as the module docstring says;
    each directory fd in *writable_dirs* keeps its regular files' read/write/create/remove
    (a ``--snapshot-dir``).

    Returns the ABI version used (0: not available, nothing done). Raises ``OSError`` if
    the kernel has Landlock but refuses the ruleset."""
    abi = abi_version()
    if abi < 1:
        return 0
    attr = _RulesetAttr()
    attr.handled_access_fs = sum(bits for since, bits in _FS_BY_ABI.items() if abi >= since)
    size = 8  # the struct grew with the ABI: pass the size this kernel knows
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    libc = _libc()
    fd = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for dir_fd in writable_dirs:
            allowed = _WRITE_FILE | _READ_FILE | _READ_DIR | _REMOVE_FILE | _MAKE_REG | (_TRUNCATE if abi >= 3 else 0)
            rule = _PathBeneathAttr(allowed, dir_fd)
            if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), 0):
                err = ctypes.get_errno()
                raise OSError(err, f"landlock_add_rule: {os.strerror(err)}")
        # Required unless CAP_SYS_ADMIN; the seccomp filter sets it as well.
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"PR_SET_NO_NEW_PRIVS: {os.strerror(err)}")
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(fd)
    return abi
