"""Channels end to end: real guests on /dev/kvm through the real CLI.

A disk written in one run and read back in the next (and checked from Python),
two VMs talking over a Unix socket, a peer killed under a survivor, console
input, and the one-line errors for bad ``--disk`` / ``--channel`` values.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from .conftest import ROOT, assert_one_line_error, pyvmm
from .test_channel_devices import unwritable_file

pytestmark = pytest.mark.kvm

# The guest's pattern (guest-kernel/include/chan.h): 8-byte words seed*K1 + (i % PERIOD)*K2.
K1, K2, PERIOD = 0x9E3779B97F4A7C15, 0x100000001B3, 509
MASK = (1 << 64) - 1
# guest-kernel/include/disktest.h
MIB = 1 << 20
DISK_SIZE = 4 * MIB
REGIONS = [(0, 4096, 1), (12345, 5000, 2), (65536 - 100, 300, 3), (MIB, MIB, 4)]
TAIL_SEED = 9


def pattern(n: int, seed: int) -> bytes:
    period = b"".join(((seed * K1 + i * K2) & MASK).to_bytes(8, "little") for i in range(PERIOD))
    reps = n // len(period) + 1
    return (period * reps)[:n]


def test_pattern_matches_the_guests_definition():
    first = pattern(16, 3)
    assert first[:8] == ((3 * K1) & MASK).to_bytes(8, "little")
    assert first[8:] == ((3 * K1 + K2) & MASK).to_bytes(8, "little")
    assert pattern(PERIOD * 8 + 8, 3)[-8:] == first[:8]  # periodic


# -- block -----------------------------------------------------------------------------------
def test_disk_written_in_one_run_is_read_back_in_the_next(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(DISK_SIZE))

    write = pyvmm("run", "--disk", str(disk), "--cmdline", "test=diskwrite")
    assert write.returncode == 0, write
    assert "diskwrite: across the end -> 40" in write.stdout
    assert "diskwrite: at the end -> -28" in write.stdout
    assert "diskwrite: flush -> 0" in write.stdout
    assert "diskwrite: ok" in write.stdout

    data = disk.read_bytes()
    assert len(data) == DISK_SIZE  # a block channel never grows its file
    written = bytearray(DISK_SIZE)
    for offset, length, seed in REGIONS:
        assert data[offset : offset + length] == pattern(length, seed), (offset, length)
        written[offset : offset + length] = b"\1" * length
    assert data[-40:] == pattern(40, TAIL_SEED)
    written[-40:] = b"\1" * 40
    # Nothing else was touched.
    assert all(b == 0 for b, w in zip(data, written, strict=True) if not w)

    read = pyvmm("run", "--disk", str(disk), "--cmdline", "test=diskread")
    assert read.returncode == 0, read
    for line in (
        "diskread: across the end -> 40",
        "diskread: at the end -> 0",
        "diskread: past RAM -> -14",
        "diskread: into boot info -> -14",
        "diskread: ok",
    ):
        assert line in read.stdout, read.stdout


def test_diskread_notices_a_changed_disk(tmp_path):
    """The read-back verdict is real: flip one byte of the bulk region and it fails."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(DISK_SIZE))
    assert pyvmm("run", "--disk", str(disk), "--cmdline", "test=diskwrite").returncode == 0
    with open(disk, "r+b") as f:
        f.seek(MIB + 777_777)
        byte = f.read(1)
        f.seek(MIB + 777_777)
        f.write(bytes([byte[0] ^ 0x40]))
    read = pyvmm("run", "--disk", str(disk), "--cmdline", "test=diskread")
    assert read.returncode == 1, read
    assert "first difference at +777777: FAIL" in read.stdout


def test_second_disk_is_disk1(tmp_path):
    small, big = tmp_path / "a.img", tmp_path / "b.img"
    small.write_bytes(bytes(4096))
    big.write_bytes(bytes(DISK_SIZE))
    run = pyvmm("run", "--disk", str(small), "--disk", str(big), "--cmdline", "test=diskwrite disk=disk1")
    assert run.returncode == 0, run
    assert small.read_bytes() == bytes(4096)
    assert big.read_bytes()[:4096] == pattern(4096, 1)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: str(p / "missing.img"), "no such file"),
        (lambda p: str(p), "is a directory"),
        (unwritable_file, "cannot open for reading and writing"),
    ],
)
def test_bad_disk_is_a_one_line_error(tmp_path, make, fragment):
    assert_one_line_error(pyvmm("run", "--disk", make(tmp_path)), "--disk", fragment)


# -- streams between two VMs -------------------------------------------------------------------
class Vm:
    """A ``pyvmm run`` in the background whose console lines can be awaited."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyvmm", "run", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_for_line(self, fragment: str, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r} in {''.join(self.stdout)!r}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout)
        stderr = self.proc.stderr.read()
        self._reader.join(5)
        return rc, "".join(self.stdout), stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def vms():
    started: list[Vm] = []

    def start(*args: str) -> Vm:
        vm = Vm(*args)
        started.append(vm)
        return vm

    yield start
    for vm in started:
        vm.kill()


@pytest.mark.parametrize("listener", ["receiver", "sender"])
def test_message_from_guest_a_arrives_in_guest_b(tmp_path, vms, listener):
    sock = str(tmp_path / "link.sock")
    recv_spec = f"link=unix:{sock}" + (",server" if listener == "receiver" else "")
    send_spec = f"link=unix:{sock}" + (",server" if listener == "sender" else "")
    b = vms("--channel", recv_spec, "--cmdline", "test=chanrecv", "--timeout", "60")
    a = vms("--channel", send_spec, "--cmdline", "test=chansend msg=hello-from-guest-A", "--timeout", "60")
    rc_a, out_a, err_a = a.finish()
    rc_b, out_b, err_b = b.finish()
    assert (rc_a, rc_b) == (0, 0), (out_a, err_a, out_b, err_b)
    size = MIB + 4099
    assert "chanrecv: message 'hello-from-guest-A'" in out_b
    assert f"chanrecv: bulk {size} bytes in " in out_b and ": ok" in out_b
    assert f"chansend: sent 'hello-from-guest-A' and {size} bytes" in out_a
    assert f"chansend: peer acknowledged {size + len('hello-from-guest-A')} bytes: ok" in out_a
    assert err_a == err_b == ""
    assert not os.path.exists(sock)  # the listener removed the socket it made


@pytest.mark.parametrize("victim", ["server", "client"])
def test_vanished_peer_gives_the_survivor_errors_not_a_hang(tmp_path, vms, victim):
    sock = str(tmp_path / "link.sock")
    server = vms("--channel", f"link=unix:{sock},server", "--cmdline", "test=chanreset", "--timeout", "90")
    client = vms("--channel", f"link=unix:{sock}", "--cmdline", "test=chanreset", "--timeout", "90")
    for vm in (server, client):
        vm.wait_for_line("chanreset: connected")
    dead, survivor = (server, client) if victim == "server" else (client, server)
    os.kill(dead.proc.pid, signal.SIGKILL)
    rc, out, err = survivor.finish()
    assert rc == 0, (out, err)
    assert "received 4 bytes, then recv -> -104, recv -> -104, send -> -32" in out
    assert ": ok" in out
    assert "Traceback" not in err


def test_channel_errnos_without_a_peer(tmp_path):
    run = pyvmm("run", "--channel", f"link=unix:{tmp_path / 'nobody.sock'}", "--cmdline", "test=chanerr")
    assert run.returncode == 0, run
    assert "chanerr send-no-peer: -11" in run.stdout
    assert "chanerr info-boot-info: -14" in run.stdout
    assert "chanerr: ok" in run.stdout


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("link", "expected NAME=unix:PATH"),
        ("link=tcp:localhost:4000", "only unix:PATH"),
        ("link=unix:/tmp/x,listen", "unknown option 'listen'"),
        ("console=unix:/tmp/x", "already used"),
    ],
)
def test_bad_channel_spec_is_a_one_line_error(spec, fragment):
    assert_one_line_error(pyvmm("run", "--channel", spec), "--channel", fragment)


def test_socket_in_use_by_a_live_listener(tmp_path):
    path = str(tmp_path / "busy.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen(1)
    try:
        run = pyvmm("run", "--channel", f"link=unix:{path},server")
    finally:
        live.close()
    assert_one_line_error(run, "--channel link", "in use by another listening VM")
    assert os.path.exists(path)  # not ours: left alone


def test_existing_file_at_socket_path_is_left_alone(tmp_path):
    path = tmp_path / "taken"
    path.write_text("precious")
    assert_one_line_error(pyvmm("run", "--channel", f"link=unix:{path},server"), "already exists")
    assert path.read_text() == "precious"


# -- console input ---------------------------------------------------------------------------
def test_console_recv_reads_stdin():
    run = pyvmm("run", "--cmdline", "test=consread", input="hello guest\n")
    assert run.returncode == 0, run
    assert "consread: got 'hello guest\n'" in run.stdout
    assert "consread: end of input after 12 bytes" in run.stdout


def test_console_recv_is_eagain_until_input_arrives():
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--cmdline", "test=consread", "--timeout", "60"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "consread: waiting" in line:
                break
        proc.stdin.write("late\n")
        proc.stdin.close()
        out = proc.stdout.read()
        assert proc.wait(60) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "consread: got 'late\n'" in out
    assert "end of input after 5 bytes" in out
