"""Nothing lost: what a guest wrote before it crashed, or before pyvmm was SIGKILLed, is there:
every console line on the host's stdout, every flushed disk write in the file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from pyvmm.options import RUN_OPTIONS

from .conftest import ROOT
from .hostile import assert_host_intact, hostile, skip_if_unsupported

pytestmark = pytest.mark.kvm

needs_disk = pytest.mark.skipif(
    not any("--disk" in spec.flags for spec in RUN_OPTIONS), reason="this pyvmm has no --disk (block channels)"
)
RECORD = 512


def _record(i: int) -> bytes:
    head = f"record {i}".encode() + b"\0"
    return head + b"." * (RECORD - 1 - len(head)) + b"\n"


def test_console_lines_before_a_crash_all_arrive():
    run = hostile("print-crash", extra="lines=3000", timeout=120)
    assert_host_intact(run)
    assert run.returncode == 125, run
    lines = [line for line in run.stdout.splitlines() if line.startswith("hostile line ")]
    assert lines == [f"hostile line {i}" for i in range(3000)]
    assert "triple fault" in run.stderr


@needs_disk
def test_flushed_disk_writes_survive_a_guest_crash(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    run = hostile("disk", "--disk", str(disk), extra="records=300", timeout=120)
    skip_if_unsupported(run)
    assert_host_intact(run)
    assert run.returncode == 125, run  # it crashed after its last flush
    assert "hostile disk: flushed 299" in run.stdout
    data = disk.read_bytes()
    for i in range(300):
        assert data[i * RECORD : (i + 1) * RECORD] == _record(i), i


@needs_disk
def test_flushed_disk_writes_survive_sigkill_of_pyvmm(tmp_path):
    """pyvmm is killed while the guest writes: every record the guest saw flushed is in the file."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(64 << 20))
    cmdline = "test=hostile case=disk records=100000 then=spin"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--disk", str(disk), "--timeout", "120", "--cmdline", cmdline],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    flushed = -1
    try:
        for line in proc.stdout:
            if "hostile: unsupported" in line:
                pytest.skip(line.strip())
            m = re.match(r"hostile disk: flushed (\d+)$", line.strip())
            if m:
                flushed = int(m.group(1))
                if flushed >= 200:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    for m in re.finditer(r"hostile disk: flushed (\d+)", rest):  # said before the kill landed
        flushed = max(flushed, int(m.group(1)))
    assert proc.returncode == -signal.SIGKILL
    assert flushed >= 200
    data = disk.read_bytes()
    for i in range(flushed + 1):
        assert data[i * RECORD : (i + 1) * RECORD] == _record(i), i
