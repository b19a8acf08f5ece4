"""Helpers for the hostile-guest tests: run ``test=hostile case=NAME`` and read what it said."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

from .conftest import ROOT, Run, pyvmm
from .soak import pyvmm_argv, read_hwm

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
    max_rss_kib: int  # the pyvmm process's own peak RSS (VmHWM)
    seconds: float


def run_measured(*args: str, timeout: float = 60) -> Measured:
    """Run ``pyvmm ARGS`` (the real CLI) and report its peak RSS."""
    with tempfile.TemporaryDirectory(prefix="pyvmm-hwm-") as d:
        hwm = os.path.join(d, "hwm")
        t0 = time.monotonic()
        proc = subprocess.run(
            pyvmm_argv(hwm, *args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL
        )
        return Measured(proc.returncode, proc.stdout, proc.stderr, read_hwm(hwm), time.monotonic() - t0)
