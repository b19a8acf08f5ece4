"""Soak: many VMs created, booted and torn down, sequentially in one process (Machine API) and
concurrently as ``pyvmm run`` processes, measuring open fds, RSS and threads before and after.

Used by tests/test_soak.py (short profile) and scripts/soak.py (long profile, by hand).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class SequentialSoak:
    vms: int
    fds_before: int = 0
    fds_after: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    threads_before: int = 0
    threads_after: int = 0
    seconds: float = 0.0
    exit_codes: set[int] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"sequential: {self.vms} VMs in {self.seconds:.1f} s ({1000 * self.seconds / self.vms:.1f} ms each); "
            f"fds {self.fds_before} -> {self.fds_after}; RSS {self.rss_before_kib} -> {self.rss_after_kib} KiB "
            f"({self.rss_after_kib - self.rss_before_kib:+d}); threads {self.threads_before} -> {self.threads_after}"
        )


def soak_sequential(kernel: Path, vms: int, *, warmup: int = 10, memory: int = 16 << 20) -> SequentialSoak:
    """Boot *vms* VMs one after the other (each runs its guest to SHUTDOWN(3) and is closed).

    The first *warmup* VMs are not measured: they fill Python's caches and allocator pools.
    """
    from pyvmm.machine import Machine, MachineConfig, StopReason

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        config = MachineConfig(kernel=kernel, memory=memory, cmdline="exit=3", console_fd=devnull, timeout=30)

        def one() -> int:
            with Machine(config) as m:
                result = m.run()
            assert result.reason is StopReason.SHUTDOWN, result
            return result.exit_code

        for _ in range(warmup):
            one()
        s = SequentialSoak(vms, open_fds(), 0, rss_kib(), 0, threading.active_count())
        t0 = time.monotonic()
        for _ in range(vms):
            s.exit_codes.add(one())
        s.seconds = time.monotonic() - t0
        s.fds_after, s.rss_after_kib, s.threads_after = open_fds(), rss_kib(), threading.active_count()
        return s
    finally:
        os.close(devnull)


@dataclass
class ConcurrentSoak:
    vms: int
    parallel: int
    seconds: float = 0.0
    exit_codes: dict[int, int] = field(default_factory=dict)
    max_rss_kib: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rss = sorted(self.max_rss_kib)
        mid = rss[len(rss) // 2] if rss else 0
        return (
            f"concurrent: {self.vms} pyvmm processes, {self.parallel} at a time, in {self.seconds:.1f} s; "
            f"exit codes {self.exit_codes}; peak RSS per process min {rss[0] if rss else 0} "
            f"median {mid} max {rss[-1] if rss else 0} KiB; failures {len(self.failures)}"
        )


def soak_concurrent(vms: int, parallel: int, *, kernel: Path | None = None) -> ConcurrentSoak:
    """Run *vms* ``pyvmm run`` processes, *parallel* at a time; each must exit 3."""
    import tempfile

    c = ConcurrentSoak(vms, parallel)
    args = ["run", "--memory", "16M", "--timeout", "120", "--cmdline", "exit=3"]
    if kernel is not None:
        args.insert(1, str(kernel))
    running: dict[subprocess.Popen, str] = {}
    started = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyvmm-soak-") as tmp:
        while started < vms or running:
            while started < vms and len(running) < parallel:
                hwm = os.path.join(tmp, f"{started}.hwm")
                p = subprocess.Popen(
                    pyvmm_argv(hwm, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
                )
                running[p] = hwm
                started += 1
            done = [p for p in running if p.poll() is not None]
            if not done:
                time.sleep(0.005)
                continue
            for p in done:
                hwm = running.pop(p)
                err = p.stderr.read().decode(errors="replace")
                p.stderr.close()
                c.exit_codes[p.returncode] = c.exit_codes.get(p.returncode, 0) + 1
                c.max_rss_kib.append(read_hwm(hwm))
                if p.returncode != 3 or err:
                    c.failures.append(f"exit {p.returncode}: {err.strip()[:300]}")
    c.seconds = time.monotonic() - t0
    return c


#: Runs the real CLI entry point, then leaves the process's own memory high-water mark
#: (VmHWM: of this program's address space only; a fork's rusage would count the parent's)
#: in the file named by argv[1].
_HWM_WRAPPER = (
    "import atexit, sys\n"
    "out = open(sys.argv[1], 'w')\n"
    "status = open('/proc/self/status')  # opened now: pyvmm's seccomp filter refuses open later\n"
    "def hwm():\n"
    "    status.seek(0)\n"
    "    for line in status.read().splitlines():\n"
    "        if line.startswith('VmHWM:'):\n"
    "            out.write(line.split()[1])\n"
    "    out.close()\n"
    "atexit.register(hwm)\n"
    "sys.argv = ['pyvmm', *sys.argv[2:]]\n"
    "from pyvmm.__main__ import main\n"
    "main()\n"
)


def pyvmm_argv(hwm_file: str | os.PathLike, *args: str) -> list[str]:
    """argv for ``pyvmm ARGS`` that records its peak RSS (KiB) in *hwm_file*."""
    return [sys.executable, "-c", _HWM_WRAPPER, str(hwm_file), *args]


def read_hwm(hwm_file: str | os.PathLike) -> int:
    try:
        return int(Path(hwm_file).read_text())
    except (OSError, ValueError):
        return 0
