"""Helpers for the hostile-guest tests: run ``test=hostile case=NAME`` and read what it said."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest

from .conftest import ROOT, Run, pyvmm

_STEP = re.compile(r"^hostile ([\w^.-]+): (-?\d+)( \(WRONG\))?$", re.MULTILINE)


def hostile(case: str, *args: str, extra: str = "", input: str | None = None, timeout: float = 60) -> Run:
    cmdline = f"test=hostile case={case} {extra}".strip()
    return pyvmm("run", *args, "--cmdline", cmdline, input=input, timeout=timeout)


def steps(run: Run) -> dict[str, int]:
    """``{step: value}`` from the guest's "hostile STEP: VALUE" lines."""
    return {m.group(1): int(m.group(2)) for m in _STEP.finditer(run.stdout)}


def skip_if_unsupported(run: Run) -> None:
    """The guest found the hypercall missing (-ENOSYS): the feature has not landed yet."""
    m = re.search(r"hostile: unsupported \((.*)\)", run.stdout)
    if m:
        pytest.skip(f"this pyvmm lacks the feature: {m.group(1)}")


def assert_host_intact(run: Run) -> None:
    """Whatever the guest did, pyvmm itself reported it in an orderly way."""
    assert "Traceback" not in run.stderr, run.stderr
    assert "pyvmm internal error" not in run.stderr, run.stderr


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    max_rss_kib: int
    seconds: float


def run_measured(*args: str, timeout: float = 60, input: bytes | None = None) -> Measured:
    """Run ``pyvmm`` and report its own peak RSS (``wait4`` rusage of that one child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyvmm", *args],
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=ROOT,
        )
        if input is not None:
            proc.stdin.write(input)
            proc.stdin.close()
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise AssertionError(f"pyvmm {' '.join(args)} did not stop within {timeout}s")
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Measured(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss,
            seconds,
        )
