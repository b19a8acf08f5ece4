"""x86-64 Linux system-call names (for ``pyvmm exec --stats``) and the counters' report."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmm.paravirt.abi import ExecStats

NAMES = {
    0: "read", 1: "write", 2: "open", 3: "close", 4: "stat", 5: "fstat", 6: "lstat", 7: "poll",
    8: "lseek", 9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk", 13: "rt_sigaction",
    14: "rt_sigprocmask", 15: "rt_sigreturn", 16: "ioctl", 17: "pread64", 18: "pwrite64", 19: "readv",
    20: "writev", 21: "access", 22: "pipe", 23: "select", 24: "sched_yield", 25: "mremap", 26: "msync",
    27: "mincore", 28: "madvise", 32: "dup", 33: "dup2", 35: "nanosleep", 39: "getpid", 40: "sendfile",
    41: "socket", 56: "clone", 57: "fork", 58: "vfork", 59: "execve", 60: "exit", 61: "wait4", 62: "kill",
    63: "uname", 72: "fcntl", 76: "truncate", 77: "ftruncate", 78: "getdents", 79: "getcwd", 80: "chdir",
    81: "fchdir", 82: "rename", 83: "mkdir", 84: "rmdir", 87: "unlink", 89: "readlink", 95: "umask",
    96: "gettimeofday", 97: "getrlimit", 98: "getrusage", 99: "sysinfo", 102: "getuid", 104: "getgid",
    107: "geteuid", 108: "getegid", 110: "getppid", 111: "getpgrp", 131: "sigaltstack", 137: "statfs",
    138: "fstatfs", 157: "prctl", 158: "arch_prctl", 186: "gettid", 200: "tkill", 201: "time", 202: "futex",
    217: "getdents64", 218: "set_tid_address", 228: "clock_gettime", 229: "clock_getres",
    230: "clock_nanosleep", 231: "exit_group", 234: "tgkill", 257: "openat", 262: "newfstatat",
    267: "readlinkat", 269: "faccessat", 273: "set_robust_list", 293: "pipe2", 302: "prlimit64",
    318: "getrandom", 332: "statx", 334: "rseq", 435: "clone3", 439: "faccessat2",
}  # fmt: skip


def name(nr: int) -> str:
    return NAMES.get(nr, f"syscall_{nr}")


def format_stats(stats: ExecStats | None) -> str:
    """``pyvmm: exec: linux calls: write=3 ...`` and the refused ones (-ENOSYS), one line each."""
    if stats is None:
        return "pyvmm: exec: linux calls: (no counters: the program did not exit normally)"
    made = [(nr, n) for nr, n in enumerate(stats.calls) if n]
    refused = [(nr, n) for nr, n in enumerate(stats.enosys) if n]
    calls = " ".join(f"{name(nr)}={n}" for nr, n in made) or "none"
    enosys = " ".join(f"{name(nr)}={n}" for nr, n in refused)
    if stats.other:
        enosys = f"{enosys} other={stats.other}".strip()
    return f"pyvmm: exec: linux calls: {calls}\npyvmm: exec: refused (-ENOSYS): {enosys or 'none'}"
