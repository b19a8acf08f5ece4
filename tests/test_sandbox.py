"""Containment: once the VM is built, pyvmm confines itself with a seccomp allow-list
(pyvmm/sandbox.py); ``--no-seccomp`` opts out."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pyvmm import sandbox

from .conftest import ROOT, assert_crash_report_of_ud2, pyvmm

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(not sandbox.available(), reason="libseccomp.so.2 is not installed"),
]

# Builds and runs a VM, contained, in a fresh process; then tries what a VMM taken over by
# its guest might try, and reports the errno of each attempt (0: it was allowed).
PROBE = r"""
import errno, json, os, socket, sys, threading
from pyvmm.guest import bundled_kernel
from pyvmm.machine import Machine, MachineConfig

m = Machine(MachineConfig(kernel=bundled_kernel(), memory=16 << 20, cmdline="exit=3", console_fd=2))
m.contain()
result = m.run()
m.close()
out = {"exit_code": result.exit_code}

def attempt(name, fn):
    try:
        fn()
        out[name] = 0
    except OSError as e:
        out[name] = e.errno

attempt("open", lambda: os.open("/etc/hostname", os.O_RDONLY))
attempt("creat", lambda: os.open("/tmp/pyvmm-seccomp-probe", os.O_WRONLY | os.O_CREAT, 0o600))
attempt("inet-socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("fork", os.fork)
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("kill-init", lambda: os.kill(1, 0))
attempt("unix-socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
t = threading.Thread(target=lambda: None)
attempt("thread", lambda: (t.start(), t.join()))
print(json.dumps(out))
"""


def test_forbidden_system_calls_are_refused_after_setup():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["exit_code"] == 3  # the VM ran normally under the filter
    eperm = 1
    # Unix sockets too: a stream channel's sockets come from the socket broker (tests/test_containment.py).
    for name in ("open", "creat", "inet-socket", "fork", "exec", "kill-init", "unix-socket"):
        assert out[name] == eperm, (name, out)
    assert out["thread"] == 0, out  # what vCPUs need still works


def _seccomp_mode(*args: str) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", *args, "--cmdline", "test=spin", "--timeout", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        proc.stdout.readline()  # the banner: the VM is running
        proc.stdout.readline()
        time.sleep(0.2)
        with open(f"/proc/{proc.pid}/status") as f:
            return next(line.split(":")[1].strip() for line in f if line.startswith("Seccomp:"))
    finally:
        proc.kill()
        proc.wait()


def test_pyvmm_run_is_contained_unless_told_not_to():
    assert _seccomp_mode() == "2"  # SECCOMP_MODE_FILTER
    assert _seccomp_mode("--no-seccomp") == "0"


def test_contained_runs_keep_their_behaviour(tmp_path):
    """Console output, a disk, a crash report and a timeout, under the filter."""
    disk = tmp_path / "d.img"
    disk.write_bytes(bytes(4 << 20))
    run = pyvmm("run", "--disk", str(disk), "--cmdline", "test=diskwrite")
    assert run.returncode == 0 and "diskwrite: ok" in run.stdout, run
    run = pyvmm("run", "--cmdline", "test=crash")
    assert run.returncode == 125 and "triple fault" in run.stderr, run
    assert_crash_report_of_ud2(run)
    run = pyvmm("run", "--cmdline", "test=spin", "--timeout", "0.3")
    assert run.returncode == 124, run


def test_info_says_pyvmm_is_contained():
    run = pyvmm("info")
    assert "seccomp:         libseccomp.so.2" in run.stdout, run
