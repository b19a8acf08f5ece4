"""Shared fixtures: the real /dev/kvm, the real bundled guest, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# The kvm marker (skip where /dev/kvm is unusable) and the pyvmm_vm fixture come from pyvmm's
# own pytest plugin (pyvmm/pytest_plugin.py), loaded through its pytest11 entry point.


@pytest.fixture(scope="session")
def guest_kernel() -> Path:
    """The bundled guest kernel, built (once) with gcc."""
    from pyvmm.guest import bundled_kernel

    return Path(bundled_kernel())


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def pyvmm(*args: str, timeout: float = 60, env: dict | None = None, input: str | None = None) -> Run:
    """Run the real ``pyvmm`` CLI in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyvmm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        cwd=ROOT,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(run: Run, *fragments: str) -> None:
    """A user error: exit 2, exactly one line on stderr, no traceback."""
    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("pyvmm: error: "), run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_crash_report_of_ud2(run) -> None:
    """*run* (``test=crash``) printed a useful report on whatever backend this is."""
    import re

    if "the backend reset this vCPU" in run.stderr:
        # AMD SVM resets the vCPU at the SHUTDOWN intercept: the report shows its last exit
        # before the fault (the console SEND just before the ud2), with the code there.
        rip = int(re.search(r"rip=([0-9a-f]{16})", run.stderr).group(1), 16)
        assert any(start <= rip < end for start, end in _kernel_code_ranges()), hex(rip)
        assert "code at rip (gpa" in run.stderr
    else:
        assert "rip=" in run.stderr and "cr3=" in run.stderr
        assert "0f 0b" in run.stderr  # the ud2 bytes at rip


def _kernel_code_ranges() -> list[tuple[int, int]]:
    from pyvmm.guest import bundled_kernel
    from pyvmm.loader import read_elf

    image = read_elf(bundled_kernel(quiet=True))
    return [(seg.gpa, seg.end) for seg, _ in image.segments if seg.executable]
