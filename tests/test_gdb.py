"""``pyvmm run --gdb`` against a real gdb (batch mode) and a small protocol client, on /dev/kvm.

Each test starts the real CLI listening on a Unix socket in ``tmp_path``, runs
``gdb -batch`` with ``-ex`` commands against the bundled kernel's ELF (its symbols
and line tables come from ``-g``) and asserts on what gdb printed and what the guest
did (console, exit status).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyvmm.gdb import emulated_kernel, rsp
from pyvmm.gdb.client import RspClient
from tests.conftest import ROOT, assert_one_line_error, pyvmm

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed (apt-get install gdb)"),
]

GDB_TIMEOUT = 60


@pytest.fixture(scope="session")
def debug_kernel(guest_kernel) -> Path:
    """The bundled kernel's symbols file (``-g``): what gdb's ``file`` loads."""
    from pyvmm.guest import bundled_kernel_debug

    return Path(bundled_kernel_debug())


@dataclass
class Session:
    gdb: str  # gdb's stdout and stderr
    returncode: int  # pyvmm's
    stderr: str  # pyvmm's
    console: str


def _start_pyvmm(sock: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--gdb", f"unix:{sock}", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"pyvmm did not listen: {proc.returncode} {err}")
        time.sleep(0.02)
    return proc


def gdb_session(tmp_path, kernel, pyvmm_args, commands, *, sigint_after: float | None = None) -> Session:
    sock = tmp_path / "gdb.sock"
    proc = _start_pyvmm(sock, "--timeout", "40", *pyvmm_args)
    argv = ["gdb", "-nx", "-batch", "-ex", f"file {kernel}", "-ex", f"target remote {sock}"]
    for command in commands:
        argv += ["-ex", command]
    try:
        gdb = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if sigint_after is not None:
            time.sleep(sigint_after)
            gdb.send_signal(signal.SIGINT)  # what Ctrl-C in gdb's terminal does: gdb sends 0x03
        gdb_out, _ = gdb.communicate(timeout=GDB_TIMEOUT)
        console, err = proc.communicate(timeout=GDB_TIMEOUT)
    finally:
        for p in (proc,):
            if p.poll() is None:
                p.kill()
                p.wait()
    return Session(gdb_out, proc.returncode, err, console)


def _symbol(kernel, name: str) -> int:
    out = subprocess.run(["nm", str(kernel)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise KeyError(name)


def _source_line(name: str, text: str) -> int:
    """The 1-based line of guest-kernel/NAME where *text* first appears (no line numbers baked in)."""
    for number, line in enumerate((ROOT / "guest-kernel" / name).read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {name}")


def test_break_continue_bt_registers_cmdline_step(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path,
        debug_kernel,
        ["--cmdline", "test=smpid marker=gdb-was-here"],
        [
            "break kmain",
            "continue",
            "bt",
            "info registers rip",
            "x/s bi->cmdline",
            "stepi",
            "info registers rip",
            "next",
            "next",
            "info registers cr3 efer fs_base",
            "continue",
        ],
    )
    kmain = _symbol(debug_kernel, "kmain")
    assert "\nBreakpoint 1, kmain (bi=0x1000) at kernel.c:22" in s.gdb, s.gdb
    assert re.search(r"#0\s+kmain \(bi=0x1000\) at kernel.c:22\n#1\s+0x[0-9a-f]+ in _start \(\) at start.S", s.gdb)
    assert re.search(rf"rip\s+{kmain:#x}\s+{kmain:#x} <kmain>", s.gdb), s.gdb
    assert '"test=smpid marker=gdb-was-here"' in s.gdb
    rips = [int(x, 16) for x in re.findall(r"^rip\s+(0x[0-9a-f]+)", s.gdb, re.M)]
    assert rips[0] == kmain and kmain < rips[1] < kmain + 16  # stepi moved one instruction on
    # stepi stays in kmain's prologue; the two `next`s reach the magic check, then the next statement.
    magic = _source_line("kernel.c", "if (bi->magic")
    quiet = _source_line("kernel.c", 'if (cmdline_get("quiet"')
    shown = [int(n) for n in re.findall(r"^(\d+)\t", s.gdb, re.M)]
    assert magic in shown and quiet in shown and shown.index(quiet) > shown.index(magic), s.gdb
    assert re.search(r"cr3\s+0x10000", s.gdb) and re.search(r"efer\s+0xd01", s.gdb)
    assert "[Inferior 1 (Remote target) exited normally]" in s.gdb  # W00 after SHUTDOWN(0)
    assert s.returncode == 0 and "smpid: vcpu 0 says 0" in s.console
    assert "Traceback" not in s.stderr


def test_hbreak_and_watch_a_kernel_variable(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path,
        debug_kernel,
        ["--cmdline", "test=smpid"],
        ["hbreak smpid_main", "continue", "watch count", "continue", "print count", "delete", "continue"],
    )
    assert "Hardware assisted breakpoint 1 at" in s.gdb
    assert "\nBreakpoint 1, smpid_main () at programs/smpid.c" in s.gdb, s.gdb
    assert "Hardware watchpoint 2: count" in s.gdb
    assert re.search(r"Old value = 0\nNew value = 1", s.gdb), s.gdb
    assert "$1 = 1" in s.gdb
    assert "exited normally" in s.gdb and s.returncode == 0


def test_two_vcpus_are_two_threads(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path,
        debug_kernel,
        ["--vcpus", "2", "--cmdline", "test=smpid"],
        ["break secondary_main", "continue", "info threads", "bt 1", "thread 1", "bt 1", "delete", "continue"],
    )
    assert 'Thread 2 "vcpu1" hit Breakpoint 1, secondary_main (cpu=1)' in s.gdb, s.gdb
    assert re.search(r'\* 2\s+Thread 2 "vcpu1" \(vCPU 1, stopped\) secondary_main', s.gdb), s.gdb
    assert re.search(r'  1\s+Thread 1 "vcpu0" \(vCPU 0, (stopped|asleep in BLOCK/HLT)\)', s.gdb), s.gdb
    assert "[Switching to thread 1 (Thread 1)]" in s.gdb
    assert s.returncode == 0 and "smpid: vcpu 1 says 1" in s.console


def test_ctrl_c_stops_a_spinning_guest_then_kill(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path, debug_kernel, ["--cmdline", "test=spin"], ["continue", "bt", "info threads", "kill"], sigint_after=3
    )
    assert "Program received signal SIGINT, Interrupt." in s.gdb, s.gdb
    assert re.search(r"#0\s+spin_main \(\) at programs/spin.c", s.gdb), s.gdb
    assert "[Inferior 1 (Remote target) killed]" in s.gdb
    assert s.returncode == 137 and "pyvmm: killed by gdb" in s.stderr
    assert "spin: looping forever" in s.console


def test_detach_lets_the_guest_finish(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path, debug_kernel, ["--vcpus", "2", "--cmdline", "test=smpid"], ["break report", "continue", "detach"]
    )
    assert re.search(r"hit Breakpoint 1\.\d, report", s.gdb), s.gdb
    assert "[Inferior 1 (Remote target) detached]" in s.gdb
    assert s.returncode == 0 and "smpid: vcpu 1 says 1" in s.console  # int3s gone: it ran to the end
    assert "gdb detached: the guest runs on" in s.stderr


def test_a_crash_is_a_stop_before_the_crash_report(tmp_path, debug_kernel):
    s = gdb_session(tmp_path, debug_kernel, ["--cmdline", "test=crash"], ["continue", "bt 1", "x/2xb $pc", "continue"])
    assert "Program received signal SIGSEGV" in s.gdb, s.gdb
    assert re.search(r"#0\s+0x[0-9a-f]+ in crash_main \(\) at programs/crash.c", s.gdb), s.gdb
    assert re.search(r":\s+0x0f\s+0x0b", s.gdb)  # ud2 at rip, seen through the vCPU's CR3
    assert "Program terminated with signal SIGSEGV" in s.gdb
    assert s.returncode == 125 and "guest crashed on vCPU 0: triple fault" in s.stderr
    assert s.stderr.index("crashed: triple fault") < s.stderr.index("pyvmm: guest crashed")


def test_cpl3_user_task_breakpoint(tmp_path, debug_kernel):
    s = gdb_session(
        tmp_path,
        debug_kernel,
        ["--cmdline", "test=utasks"],
        ["break user_main", "continue", "bt 1", "delete", "continue"],
    )
    if emulated_kernel():
        # PVM runs CPL3 natively and never reports its int3 or DR hits: refused, and said why.
        assert "Cannot insert breakpoint 1." in s.gdb, s.gdb
        assert "refused: it is CPL3 code" in s.stderr and "(PVM)" in s.stderr
    else:
        assert "\nBreakpoint 1, user_main" in s.gdb, s.gdb
        assert "exited normally" in s.gdb and s.returncode == 0


# -- the protocol, by hand --------------------------------------------------------------------
def test_protocol_malformed_packets(tmp_path, debug_kernel):
    sock = tmp_path / "gdb.sock"
    proc = _start_pyvmm(sock, "--timeout", "30", "--cmdline", "test=smpid")
    try:
        c = RspClient(str(sock))
        c.raw(b"$qC#00")  # bad checksum
        assert c.read_ack() == b"-"
        c.raw(rsp.frame(b"X" * (rsp.MAX_PACKET + 100)))  # oversized
        assert c.read_ack() == b"-"
        supported = c.ask(b"qSupported:multiprocess+;swbreak+")
        for feature in (b"PacketSize=4000", b"qXfer:features:read+", b"swbreak+", b"hwbreak+", b"vContSupported+"):
            assert feature in supported
        assert c.ask(b"qNoSuchThing") == b""
        assert c.ask(b"vMustReplyEmpty") == b""
        assert c.ask(b"?").startswith(b"T05thread:1;")
        assert c.ask(b"m200000,zz")[:1] == b"E"  # garbage numbers
        assert c.ask(b"m")[:1] == b"E"
        assert c.ask(b"mffffffffffff0000,10") == b"E0e"  # unmapped: EFAULT, not a crash
        assert c.ask(b"m" + b"f" * 40 + b",10") == b"E0e"  # beyond 2^64
        assert c.ask(b"Z0,ffffffffffff0000,1") == b"E0e"
        assert c.ask(b"M200000,2:zz")[:1] == b"E"
        assert c.ask(b"Hgff") == b"E03"  # no such thread
        assert c.ask(b"P99=00")[:1] == b"E"
        assert c.ask(b"vCont;x")[:1] == b"E"
        kmain = _symbol(debug_kernel, "kmain")
        assert c.ask(b"m%x,4" % kmain) == c.ask(b"m%x,4" % kmain)  # twice the same
        assert c.ask(b"Z0,%x,1" % kmain) == b"OK"
        code = c.ask(b"m%x,1" % kmain)
        assert code != b"cc"  # the planted int3 is hidden from reads
        assert c.ask(b"g")[: 16 * 2] != b""
        xml = c.ask(b"qXfer:features:read:target.xml:0,ffff")
        assert xml.startswith(b"l<?xml") and b"i386:x86-64" in xml
        c.raw(rsp.frame(b"vCont;c"))
        assert c.reply() == b"T05thread:1;swbreak:;"
        c.raw(rsp.frame(b"k"))
        assert proc.wait(timeout=20) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate(timeout=10)[1]
    assert "Traceback" not in err


def test_gdb_vanishing_mid_run_is_a_detach(tmp_path, debug_kernel):
    sock = tmp_path / "gdb.sock"
    proc = _start_pyvmm(sock, "--timeout", "30", "--vcpus", "2", "--cmdline", "test=smpid")
    c = RspClient(str(sock))
    c.ask(b"Z0,%x,1" % _symbol(debug_kernel, "report"))
    c.raw(rsp.frame(b"vCont;c"))
    assert c.reply().startswith(b"T05")
    c.sock.close()  # gone without D: the breakpoint is removed, the guest runs to its end
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "smpid: vcpu 1 says 1" in out
    assert "gdb disconnected" in err and "Traceback" not in err


def test_nowait_runs_at_once_and_gdb_attaches_later(tmp_path, debug_kernel):
    sock = tmp_path / "gdb.sock"
    proc = _start_pyvmm(sock, "--gdb-nowait", "--timeout", "30", "--cmdline", "test=spin")
    try:
        deadline = time.monotonic() + 20
        while "spin: looping" not in (out := os.read(proc.stdout.fileno(), 4096).decode()):
            assert time.monotonic() < deadline
        c = RspClient(str(sock))
        assert c.ask(b"?").startswith(b"T05thread:1;")  # attaching stopped it (maybe still in kprintf)
        c.raw(rsp.frame(b"vCont;c"))
        time.sleep(0.5)
        c.raw(b"\x03")  # Ctrl-C, as gdb sends it
        assert c.reply() == b"T02thread:1;"
        spin = _symbol(debug_kernel, "spin_main")
        rip = int.from_bytes(bytes.fromhex(c.ask(b"p10").decode()), "little")
        assert spin <= rip < spin + 0x40, (hex(rip), out)
        c.raw(rsp.frame(b"k"))
        assert proc.wait(timeout=20) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gdb_that_never_attaches_still_times_out(tmp_path):
    t = time.monotonic()
    run = pyvmm("run", "--gdb", f"unix:{tmp_path / 's'}", "--timeout", "1", timeout=30)
    assert run.returncode == 124 and time.monotonic() - t < 15
    assert "stopped after --timeout" in run.stderr
    # A contained pyvmm makes no path call, so the socket file may stay; nobody listens on
    # it, so the next run on the same path replaces it.
    again = pyvmm("run", "--gdb", f"unix:{tmp_path / 's'}", "--timeout", "1", timeout=30)
    assert again.returncode == 124 and "already exists" not in again.stderr, again


def test_bad_gdb_values(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    with taken:
        assert_one_line_error(pyvmm("run", "--gdb", f"127.0.0.1:{port}"), "cannot listen", "Address already in use")
    assert_one_line_error(pyvmm("run", "--gdb", "nonsense"), "expected HOST:PORT")
    assert_one_line_error(pyvmm("run", "--gdb", "h:70000"), "port 70000")
    assert_one_line_error(pyvmm("run", "--gdb", f"unix:{tmp_path}/missing/s"), "does not exist")
    assert_one_line_error(pyvmm("run", "--gdb-nowait"), "need --gdb")
    assert_one_line_error(pyvmm("run", "--gdb", ":0", "--gdb-wait", "--gdb-nowait"), "exclude each other")
    (tmp_path / "f").write_text("")
    assert_one_line_error(pyvmm("run", "--gdb", f"unix:{tmp_path}/f"), "already exists")
