"""The hardware-API mode (``--hw-api``, docs/hwapi.md): KVM's in-kernel x2APIC and the
16550 UART, on the real /dev/kvm with the bundled kernel's ``test=hwapi`` program, and
``pyvmm bench --hw-api``'s comparison; the UART's registers as pure logic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyvmm.devices.base import ChannelError
from pyvmm.devices.uart import COM1, Uart16550
from pyvmm.paravirt.abi import Errno

from .conftest import Run, assert_one_line_error, pyvmm


@pytest.mark.kvm
def test_uart_ipis_timer_and_upcalls_side_by_side():
    run = pyvmm("run", "--hw-api", "--vcpus", "2", "--cmdline", "test=hwapi", "--timeout", "60")
    assert run.returncode == 0, run
    assert "hwapi uart: hello through COM1\n" in run.stdout  # every byte one THR write
    for step in ("self-ipi", "timer", "ipi-rtt", "upcall"):
        assert f"hwapi {step}: ok" in run.stdout, run.stdout
    assert "hwapi: ok" in run.stdout


@pytest.mark.kvm
def test_the_default_vm_has_no_apic_to_find():
    run = pyvmm("run", "--cmdline", "test=hwapi", "--timeout", "60")
    assert run.returncode == 3, run
    assert "no x2APIC in CPUID" in run.stdout


@pytest.mark.kvm
def test_garbage_uart_accesses_never_stop_the_vm_an_unserved_port_does():
    # The garbage reaches THR too: the console is bytes, not text.
    proc = subprocess.run(
        [sys.executable, "-m", "pyvmm", "run", "--hw-api", "--cmdline", "test=hwapi case=garbage", "--timeout", "60"],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    run = Run(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    assert "hwapi garbage: survived" in run.stdout, run
    assert run.returncode == 125, run
    assert "unhandled port I/O: IO out port=0x3f0" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr


@pytest.mark.kvm
def test_hw_api_refuses_snapshots_in_one_line(tmp_path):
    run = pyvmm("run", "--hw-api", "--snapshot-dir", str(tmp_path), "--timeout", "30")
    assert_one_line_error(run, "--hw-api", "snapshots")


@pytest.mark.kvm
def test_bench_compares_each_workload_both_ways(tmp_path):
    out = tmp_path / "bench.json"
    run = pyvmm("bench", "--hw-api", "--quick", "--json", str(out), timeout=400)
    assert run.returncode == 0, run
    doc = json.loads(out.read_text())
    rows = {r["workload"]: r for r in doc["abi_vs_hardware"]}
    assert len(rows) == 4, rows
    for row in rows.values():
        for side in ("abi", "hardware"):
            s = row[side]
            assert s["skipped"] is None, row
            assert s["median_ns"] > 0 and s["p99_ns"] >= s["median_ns"], row
            assert s["host_cpu_ns_per_op"] > 0 and s["vmm_code_lines"] >= 0, row
        assert row["hw_over_abi_median"] > 0
    # Exits per operation are counted, not timed: they are exact.
    ipi, timer = rows["cross-vCPU notify round trip"], rows["timer arm and fire (+200 us)"]
    assert ipi["hardware"]["exits_per_op"] == pytest.approx(0, abs=0.05)  # ICR, EOI, HLT: all inside KVM
    assert ipi["abi"]["exits_per_op"] == pytest.approx(2, abs=0.1)  # one NOTIFY_BLOCK on each side
    assert timer["hardware"]["exits_per_op"] == pytest.approx(0, abs=0.05)
    assert ipi["hardware"]["vmm_code_lines"] == 0 and ipi["abi"]["vmm_code_lines"] > 0
    for label, n in (("64 B", 64), ("1 KiB", 1024)):
        row = rows[f"console, a {label} line"]
        assert row["abi"]["exits_per_op"] == pytest.approx(1, abs=0.05)  # one SEND
        assert row["hardware"]["exits_per_op"] == pytest.approx(2 * n, rel=0.02)  # LSR read + THR write a byte
        assert row["hardware"]["snapshot_state_bytes"] == 7
    assert "system-call ABI vs hardware API" in run.stdout


class _Console:
    """Pure logic: the console channel's two calls the UART makes."""

    def __init__(self, room: bool = True) -> None:
        self.out = bytearray()
        self.room = room

    def has_output_space(self) -> bool:
        return self.room

    def send(self, data, offset):
        if not self.room:
            raise ChannelError(Errno.EAGAIN, "full")
        self.out += bytes(data)
        return len(data)


def test_uart_registers():
    console = _Console()
    u = Uart16550(console)
    assert u.read(COM1 + 5) == 0x60  # THRE | TEMT
    assert u.read(COM1 + 2) == 0xC1  # FIFOs, no interrupt pending
    u.io(COM1, True, b"hi\n", 1)
    assert bytes(console.out) == b"hi\n" and u.bytes_out == 3
    u.write(COM1 + 3, 0x83)  # DLAB: offsets 0 and 1 are the divisor now
    u.write(COM1, 0x0C)
    u.write(COM1 + 1, 0x00)
    assert u.read(COM1) == 0x0C and console.out == b"hi\n"
    u.write(COM1 + 3, 0x03)
    assert u.read(COM1) == 0  # RBR: nothing is ever received
    u.write(COM1 + 7, 0xA5)
    assert u.read(COM1 + 7) == 0xA5
    assert u.io(COM1 + 7, False, bytes(4), 4) == b"\xa5\x00\x00\x00"  # a wide read: the low byte
    u.write(COM1 + 5, 0)  # LSR is read-only
    assert u.read(COM1 + 5) == 0x60
    console.room = False  # the console's reader stopped reading
    assert u.read(COM1 + 5) == 0
    u.write(COM1, ord("x"))
    assert u.dropped == 1 and console.out == b"hi\n"
