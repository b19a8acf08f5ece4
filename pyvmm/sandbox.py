"""Containment after setup: a seccomp allow-list, as Solo5's tenders and Firecracker apply.

Once the VM is built (files opened, memory mapped, vCPUs created) and before the first
``KVM_RUN``, :func:`apply` loads a seccomp filter into every thread of the process (and
those started later): the system calls a running VMM makes are allowed, with their
arguments narrowed where that is cheap (``ioctl`` to KVM requests, ``clone`` of threads
only, ``socket`` of Unix sockets only, ``tgkill`` to this process); every other call fails
with ``EPERM``. A guest that took over the VMM process could then not open a file, exec a
program, make a network connection or signal another process.

The filter is built with libseccomp, the library systemd, Docker and QEMU use, through
ctypes (its soname ``libseccomp.so.2``; Debian's ``libseccomp2``): no Python package is
needed, and where the library is absent :func:`available` is False and pyvmm runs uncontained.

Why ``EPERM`` rather than killing the process: a refused call surfaces in Python as an
``OSError`` that the run loop turns into a crash report, so a legitimate call this list
forgot shows up as a clear error, not a silent death. It is refused either way.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

_SONAME = "libseccomp.so.2"

SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_FLTATR_CTL_TSYNC = 4
# enum scmp_compare
_CMP_EQ = 4
_CMP_MASKED_EQ = 7

_CLONE_THREAD = 0x00010000
_PR_SET_TIMERSLACK = 29
_KVM_IOCTL_TYPE = 0xAE
_FIONBIO = 0x5421
_FIOCLEX = 0x5451
_TCGETS = 0x5401
_F_GETFD, _F_SETFD, _F_GETFL, _F_SETFL = 1, 2, 3, 4


def scmp_act_errno(err: int) -> int:
    return _SCMP_ACT_ERRNO | (err & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class Rule:
    """Allow *syscall* when every (argument index, op, a, b) comparison holds."""

    syscall: str
    args: tuple[tuple[int, int, int, int], ...] = ()
    action: int = SCMP_ACT_ALLOW


def _eq(arg: int, value: int) -> tuple[int, int, int, int]:
    return (arg, _CMP_EQ, value, 0)


def _masked(arg: int, mask: int, value: int) -> tuple[int, int, int, int]:
    return (arg, _CMP_MASKED_EQ, mask, value)


#: What a running pyvmm calls: I/O on fds it already has, memory, threads, signals, time.
_PLAIN = (
    "read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 lseek close "
    "fsync fdatasync fstat mmap munmap mremap mprotect madvise brk "
    "futex set_robust_list rseq sched_yield exit exit_group "
    "rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack restart_syscall getpid gettid "
    "clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday "
    "poll ppoll select pselect6 pipe2 wait4 "
    "recvfrom recvmsg shutdown getsockopt setsockopt accept accept4"
).split()


def rules() -> list[Rule]:
    """The allow-list (plus ``clone3`` answered ``ENOSYS``, so glibc creates threads with ``clone``,
    whose flags, unlike ``clone3``'s, a filter can see)."""
    pid = os.getpid()
    out = [Rule(name) for name in _PLAIN]
    out += [
        *(Rule("ioctl", (_masked(1, 0xFF00, _KVM_IOCTL_TYPE << 8),)),),  # KVM_* requests only
        *(Rule("ioctl", (_eq(1, req),)) for req in (_FIONBIO, _FIOCLEX, _TCGETS)),
        *(Rule("fcntl", (_eq(1, cmd),)) for cmd in (_F_GETFD, _F_SETFD, _F_GETFL, _F_SETFL)),
        Rule("clone", (_masked(0, _CLONE_THREAD, _CLONE_THREAD),)),  # threads, never processes
        Rule("clone3", action=scmp_act_errno(errno.ENOSYS)),
        Rule("sendto", (_eq(4, 0),)),  # send(2) on a connected socket: no address to send to
        Rule("tgkill", (_eq(0, pid),)),  # kicking our own vCPU threads
        Rule("prctl", (_eq(0, _PR_SET_TIMERSLACK),)),
    ]
    return out


def snapshot_rules(dir_fd: int) -> tuple[Rule, ...]:
    """What writing a snapshot into the directory open as *dir_fd* needs (pyvmm.snapshot.format):
    files created, renamed and removed only relative to that descriptor, a sparse memory
    file sized with ``ftruncate``, and ``mincore`` to skip the pages the guest never touched."""
    return (
        Rule("openat", (_eq(0, dir_fd),)),
        Rule("renameat", (_eq(0, dir_fd), _eq(2, dir_fd))),
        Rule("renameat2", (_eq(0, dir_fd), _eq(2, dir_fd))),
        Rule("unlinkat", (_eq(0, dir_fd),)),
        Rule("ftruncate"),
        Rule("mincore"),
    )


class SandboxError(Exception):
    """The filter could not be built or loaded."""


def _lib():
    try:
        lib = ctypes.CDLL(_SONAME, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


_loaded = None


def _library():
    global _loaded
    if _loaded is None:
        _loaded = _lib() or False
    return _loaded or None


def available() -> bool:
    """True where libseccomp can be loaded (Linux with ``libseccomp.so.2``)."""
    return _library() is not None


def apply(extra: tuple[Rule, ...] = ()) -> None:
    """Load the allow-list (plus *extra*) into every thread of this process; irreversible.

    Raises :class:`SandboxError` if libseccomp is missing or refuses.
    """
    lib = _library()
    if lib is None:
        raise SandboxError(f"{_SONAME} is not installed")
    ctx = lib.seccomp_init(scmp_act_errno(errno.EPERM))
    if not ctx:
        raise SandboxError("seccomp_init failed")
    try:
        rc = lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_TSYNC, 1)  # every thread, now and later
        if rc < 0:
            raise SandboxError(f"seccomp_attr_set(TSYNC): {os.strerror(-rc)}")
        for rule in (*rules(), *extra):
            nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if nr < 0:
                continue  # not a system call on this architecture
            cmps = (_ArgCmp * max(len(rule.args), 1))(*(_ArgCmp(*a) for a in rule.args))
            rc = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(rule.args), cmps)
            if rc < 0:
                raise SandboxError(f"seccomp rule for {rule.syscall}: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SandboxError(f"seccomp_load: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)
