"""Careless input, round two (issue 10): closed std fds, blocked consoles, odd files and numbers.

Every test runs the real CLI in a subprocess on /dev/kvm with the bundled guest.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, assert_one_line_error, pyvmm

pytestmark = pytest.mark.kvm

PYVMM = [sys.executable, "-m", "pyvmm"]


def _sh(script: str, *, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run *script* with ``$PYVMM`` set to the CLI, so redirections like ``<&-`` apply to it."""
    env = {**os.environ, "PYVMM": " ".join(PYVMM)}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


# -- fds 0/1/2 closed at start ---------------------------------------------------------------
def test_closed_stdin_reads_as_end_of_input(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096)
    # With fd 0 closed, /dev/kvm or the disk used to become "stdin": RECV returned -EIO.
    run = _sh(f"exec $PYVMM run --cmdline test=consread --disk {disk} --timeout 30 <&-")
    assert run.returncode == 0, run
    assert "consread: end of input after 0 bytes" in run.stdout


def test_closed_stdout_discards_console_output(tmp_path):
    stats = tmp_path / "stats.json"
    # With fd 1 closed, /dev/kvm took its number and the banner's SEND failed (-EIO).
    run = _sh(f"exec $PYVMM run --stats-json {stats} --timeout 30 >&- 2>&-")
    assert run.returncode == 0, run
    send = json.loads(stats.read_text())["hypercalls"]["SEND"]
    assert send["count"] >= 1 and send["errors"] == 0, send


# -- report files that are not regular files ------------------------------------------------
@pytest.mark.parametrize("command", [["run", "--stats-json"], ["bench", "--quick", "--json"]])
def test_report_file_fifo_is_refused_before_blocking(tmp_path, command):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Nobody reads the FIFO: opening it for writing used to block forever (after the VM was built).
    run = pyvmm(*command, str(fifo), timeout=30)
    assert_one_line_error(run, "is not a regular file")


def test_report_file_device_is_left_alone(tmp_path):
    run = pyvmm("run", "--stats-json", "/dev/full", timeout=30)
    assert_one_line_error(run, "--stats-json: /dev/full is not a regular file")


# -- a reader that goes away --------------------------------------------------------------------
@pytest.mark.parametrize("args", [["run", "--help"], ["--help"], ["info"], ["bench", "--list"]])
def test_closed_stdout_pipe_exits_like_sigpipe(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before pyvmm writes: like `| head -1` that has exited
    try:
        proc = subprocess.run([*PYVMM, *args], stdout=write_end, stderr=subprocess.PIPE, timeout=60, cwd=ROOT)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc  # 128 + SIGPIPE, what a shell shows for other tools
    assert proc.stderr == b"", proc.stderr


# -- disks given twice, or that are not disks -----------------------------------------------
def test_hard_linked_disk_is_the_same_file_twice(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096)
    os.link(disk, tmp_path / "alias.img")
    run = pyvmm("run", "--disk", str(disk), "--disk", str(tmp_path / "alias.img"))
    assert_one_line_error(run, "the same file is given twice")


@pytest.mark.parametrize("path", ["/proc/self/mem", "/proc/self/environ", "EMPTY"])
def test_zero_size_disk_is_refused(tmp_path, path):
    if path == "EMPTY":
        path = str(tmp_path / "empty.img")
        open(path, "w").close()
    assert_one_line_error(pyvmm("run", "--disk", path), f"--disk {path}: is empty (0 bytes)")


# -- numbers: ASCII digits only -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["run", "--memory", "\u0666\u0664M"], "--memory"),  # Arabic-Indic 64
        (["run", "-m", "\uff16\uff14M"], "--memory"),  # fullwidth 64
        (["run", "--vcpus", "\u0662"], "--vcpus"),
        (["run", "--vcpus=1_0"], "--vcpus"),
        (["run", "--vcpus", " 2"], "--vcpus"),
        (["run", "--timeout", "\u0661\u0660"], "--timeout"),
        (["run", "--timeout", "inf"], "--timeout"),
        (["run", "--timeout", "nan"], "--timeout"),
        (["run", "--timeout", "1e999"], "--timeout"),
        (["bench", "--quick", "--iters", "\u0663"], "--iters"),
        (["bench", "--quick", "--reps", "1_0"], "--reps"),
        (["bench", "--quick", "--warmup", "\u0661"], "--warmup"),
    ],
)
def test_numbers_take_ascii_digits_only(args, flag):
    assert_one_line_error(pyvmm(*args, timeout=30), flag)


# -- a huge .bss ------------------------------------------------------------------------------
# mov eax, 1 (SHUTDOWN); mov edi, 42; out 0xf5, eax; hlt
_SHUTDOWN_42 = b"\xb8\x01\x00\x00\x00\xbf\x2a\x00\x00\x00\xe7\xf5\xf4"


def _elf_with_bss(path, bss: int) -> None:
    """A static ELF64 whose one RWX segment at 2 MiB holds the code above and *bss* zero bytes."""
    entry, phoff = 0x200000, 64
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, 62, 1, entry, phoff, 0, 0, 64, 56, 1, 0, 0, 0)
    code = _SHUTDOWN_42
    data_off = phoff + 56
    phdr = struct.pack("<IIQQQQQQ", 1, 7, data_off, entry, entry, len(code), len(code) + bss, 0x1000)
    path.write_bytes(ehdr + phdr + code)


_MEASURE = """
import resource, subprocess, sys
limit = int(sys.argv[1])
def set_limit():
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=set_limit)
sys.stderr.buffer.write(proc.stderr)
print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _run_measured(args, *, limit_as: int = 0) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in bytes) of one pyvmm run, under RLIMIT_AS *limit_as* if set."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(limit_as), *PYVMM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    status, rss = proc.stdout.split()
    return int(status), proc.stderr, int(rss)


def test_huge_bss_costs_no_host_memory(tmp_path):
    elf = tmp_path / "bss.elf"
    _elf_with_bss(elf, 2000 << 20)
    status, err, rss = _run_measured(["run", str(elf), "--memory", "2048M"])
    assert status == 42, err
    # Zeroing the .bss on the host used to cost 2000 MiB of RSS (and 11 s): now it is not touched.
    assert rss < 400 << 20, rss


def test_huge_bss_under_a_small_address_space_limit(tmp_path):
    elf = tmp_path / "bss.elf"
    _elf_with_bss(elf, 1000 << 20)
    # Room for guest RAM and pyvmm itself, not for a second, host-side copy of the .bss.
    status, err, _ = _run_measured(["run", str(elf), "--memory", "1088M"], limit_as=(1088 + 800) << 20)
    assert "MemoryError" not in err and "Traceback" not in err, err
    assert status == 42, err


# -- as many vCPUs as pyvmm allows -------------------------------------------------------------
def test_smpid_with_the_most_vcpus_pyvmm_allows():
    from pyvmm.paravirt.abi import MAX_VCPUS

    # The bundled kernel had stacks for 16 secondaries: vCPU 17 never started, smpid spun until --timeout.
    run = pyvmm("run", "--vcpus", str(MAX_VCPUS), "--cmdline", "test=smpid", "--timeout", "90", timeout=150)
    assert run.returncode == 0, run
    for cpu in range(MAX_VCPUS):
        assert f"smpid: vcpu {cpu} says {cpu}\n" in run.stdout


# -- bytes that are not UTF-8, caches that cannot be made, threads that cannot start ------------
def _run_bytes(*args: bytes, env: dict | None = None, preexec_fn=None, inherit=True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"pyvmm", *args],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        env={**(os.environ if inherit else {}), **(env or {})},
        preexec_fn=preexec_fn,
    )


def _assert_one_line(proc: subprocess.CompletedProcess, fragment: bytes) -> None:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"pyvmm: error: "), proc.stderr
    assert fragment in lines[0], lines[0]


def test_non_utf8_cmdline_reaches_the_guest_as_typed():
    proc = _run_bytes(b"run", b"--cmdline", b"k=\xff\xfe caf\xc3\xa9", b"--timeout", b"30")
    assert proc.returncode == 0 and proc.stderr == b"", proc
    assert b"cmdline: k=\xff\xfe caf\xc3\xa9\n" in proc.stdout


@pytest.mark.parametrize("name", [b"a\xff", b"\xc3", b"ok\n"])
def test_bad_channel_name_bytes_are_one_line(tmp_path, name):
    spec = name + b"=unix:" + os.fsencode(tmp_path / "s") + b",server"
    _assert_one_line(_run_bytes(b"run", b"--channel", spec), b"channel names use only")


@pytest.mark.parametrize("variable", ["PYVMM_CACHE_DIR", "XDG_CACHE_HOME"])
def test_unusable_cache_directory_is_one_line(tmp_path, variable):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # A path under a regular file can never be created, whoever runs the test.
    # PYVMM_CACHE_DIR overrides XDG_CACHE_HOME: a test of the latter must not inherit it.
    env = {k: v for k, v in os.environ.items() if k != "PYVMM_CACHE_DIR"}
    proc = _run_bytes(b"run", env={**env, variable: str(blocker / "cache")}, inherit=False)
    _assert_one_line(proc, b"cannot be used (Not a directory): set PYVMM_CACHE_DIR")


def _huge_thread_stacks():
    # glibc sizes a new thread's stack from RLIMIT_STACK: 1 GiB stacks under a 600 MiB address
    # space leave room for pyvmm itself but for no thread (the harness's own cannot start either).
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20))


def test_boot_vcpu_thread_that_cannot_start_is_one_line():
    proc = _run_bytes(b"run", b"--timeout", b"30", preexec_fn=_huge_thread_stacks)
    _assert_one_line(proc, b"cannot start a thread for vCPU 0")


def _some_thread_stacks():
    # 256 MiB stacks in 1300 MiB of address space: pyvmm (under 300 MiB here), the boot vCPU's
    # thread and the console writer's fit, with room to spare; nine such threads cannot.
    resource.setrlimit(resource.RLIMIT_STACK, (256 << 20, 256 << 20))
    resource.setrlimit(resource.RLIMIT_AS, (1300 << 20, 1300 << 20))


def test_secondary_vcpu_thread_that_cannot_start_is_enomem_for_the_guest():
    proc = _run_bytes(
        b"run", b"--vcpus", b"8", b"--cmdline", b"test=smpid", b"--timeout", b"30", preexec_fn=_some_thread_stacks
    )
    assert b"Traceback" not in proc.stderr, proc.stderr
    # smpid reports the failed VCPU_UP and stops (exit 100): the guest saw -ENOMEM (12).
    assert proc.returncode == 100, proc
    assert re.search(rb"smpid: vcpu_up\(\d\) = -12: FAIL", proc.stdout), proc.stdout


# -- a console nobody reads -----------------------------------------------------------------
def _flood_unread(args: list[str], stop_signal: int | None = None) -> tuple[int, bytes]:
    """Run ``test=flood`` with stdout a pipe that is never read; (exit status, stderr).

    Fails the test if pyvmm does not exit within 30 s of the stop (it used to hang forever:
    the vCPU thread blocked in write, the main thread in join)."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [*PYVMM, "run", "--cmdline", "test=flood", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        os.close(write_end)
        write_end = -1
        if stop_signal is not None:
            time.sleep(3)  # long enough for the pipe and pyvmm's buffer to fill
            proc.send_signal(stop_signal)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("pyvmm did not stop while its stdout was blocked")
        return proc.returncode, err
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_timeout_stops_a_vm_whose_console_is_blocked():
    status, err = _flood_unread(["--timeout", "3"])
    assert status == 124, err
    assert b"Traceback" not in err


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_a_vm_whose_console_is_blocked(sig, status):
    got, err = _flood_unread(["--timeout", "120"], stop_signal=sig)
    assert got == status, err
    assert b"Traceback" not in err


def test_console_back_pressure_loses_nothing():
    total = 3_000_000  # over ten times the output buffer: the guest meets -EAGAIN and waits
    proc = subprocess.Popen(
        [*PYVMM, "run", "--cmdline", f"test=flood bytes={total}", "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    time.sleep(2)  # a reader that is late: the pipe and pyvmm's buffer fill up first
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 0, err
    body = out.split(b"cmdline: test=flood bytes=3000000\n", 1)[1]
    block = bytes(10 if i % 64 == 63 else ord("a") + i % 26 for i in range(4096))  # as flood.c fills it
    assert len(body) == total
    assert body == (block * (total // len(block) + 1))[:total]


def test_timeout_stops_a_vm_whose_trace_on_stderr_is_blocked():
    # --trace on a stderr pipe that is never read: the trace writes (from the vCPU thread) and
    # pyvmm's last words used to block forever, after --timeout had stopped the VM.
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [*PYVMM, "run", "--trace", "--cmdline", "test=flood", "--timeout", "3"],
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            cwd=ROOT,
        )
        os.close(write_end)
        write_end = -1
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("pyvmm did not stop while its stderr was blocked")
        assert status == 124
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
