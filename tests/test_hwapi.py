"""``--hw-api``: the in-kernel LAPIC and the UART, seen from the real guest; the default VM without them.

The KVM tests boot the bundled kernel's ``test=hwapi`` program (guest-kernel/programs/hwapi.c),
which checks from inside what the VM gives; the UART and the port bus are also tested as pure
logic (they are the code a hostile guest reaches).
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import pytest

from pyvmm.hw.platform import HwApiError, check_backend
from pyvmm.hw.ports import PortBus
from pyvmm.hw.uart import FIFO_DEPTH, LSR, LSR_OE, LSR_THRE, MCR, MCR_LOOP, SCR, Uart16550
from pyvmm.kvm import Cap

from .conftest import assert_one_line_error, pyvmm


# -- the guest's view -----------------------------------------------------------------
@pytest.mark.kvm
def test_hw_api_vm_has_x2apic_ipis_tsc_deadline_timer_and_com1():
    run = pyvmm("run", "--hw-api", "--vcpus", "2", "--cmdline", "test=hwapi", timeout=120)
    assert run.returncode == 0, run
    assert "hw: cpuid apic=1 x2apic=1 tsc_deadline=1" in run.stdout
    base = int(re.search(r"apic_base=(0x[0-9a-f]+)", run.stdout).group(1), 16)
    assert base & 0xC00 == 0xC00, hex(base)  # enabled, x2APIC mode (EXTD)
    assert "x2apic_id=0 uart=1" in run.stdout  # the line came through COM1 (uart=1 switched the console)
    assert "hw: self-ipi vector=33" in run.stdout
    assert "hw: tsc-deadline vector=34" in run.stdout
    assert "hw: ipi-rtt vector=33" in run.stdout  # vCPU 1 took our IPI in HLT and answered


@pytest.mark.kvm
def test_default_vm_cpuid_hides_the_apic_and_has_no_devices():
    run = pyvmm("run", "--cmdline", "test=hwapi")
    assert run.returncode == 0, run
    # KVM derives the APIC bit from IA32_APIC_BASE at run time: the default VM disables it.
    assert "hw: cpuid apic=0 x2apic=0 tsc_deadline=0" in run.stdout
    assert "hw: none" in run.stdout


@pytest.mark.kvm
def test_the_console_is_the_uart_one_exit_per_byte(guest_kernel):
    from pyvmm.machine import Machine, MachineConfig

    with tempfile.TemporaryFile() as out:
        cfg = MachineConfig(kernel=guest_kernel, cmdline="test=hwapi", hw_api=True, console_fd=out.fileno(), stats=True)
        with Machine(cfg) as m:
            result = m.run()
            uart_bytes, port_exits = m.hw.uart.bytes_out, m.hw.ports.exits
            sent = m.metrics.summary().hypercall("SEND")
        out.seek(0)
        text = out.read()
    assert result.exit_code == 0
    assert uart_bytes == len(text) > 100  # every byte on the console went through THR
    assert port_exits >= uart_bytes  # at least one port exit per byte (LSR reads besides)
    assert sent is None  # and not one SEND


@pytest.mark.kvm
def test_a_hostile_driver_cannot_hurt_the_uart():
    run = pyvmm("run", "--hw-api", "--cmdline", "test=hwapi mode=garbage", timeout=120)
    assert run.returncode == 0, run
    assert "hw: garbage survived" in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.kvm
def test_hw_api_refuses_snapshots_in_one_line(tmp_path):
    assert_one_line_error(pyvmm("run", "--hw-api", "--snapshot-dir", str(tmp_path)), "--hw-api", "snapshot")


@pytest.mark.kvm
def test_bench_hw_api_compares_both_sides(tmp_path: Path):
    out = tmp_path / "b.json"
    only = "sc-notify-rtt,hw-ipi-rtt,sc-console-64,hw-console-64"
    run = pyvmm("bench", "--hw-api", "--only", only, "--iters", "40", "--reps", "1", "--json", str(out), timeout=300)
    assert run.returncode == 0, run
    assert "system-call API vs hardware API, per operation" in run.stdout
    comparison = {c["workload"]: c for c in json.loads(out.read_text())["comparison"]}
    rtt, console = comparison["notify round trip"], comparison["console 64 bytes"]
    # What the table is for, observably: the LAPIC path never reaches pyvmm, the syscall one
    # does (NOTIFY+BLOCK, then the answer's BLOCK return); the UART takes an exit per byte.
    assert rtt["hardware"]["exits_to_pyvmm_per_op"] < 0.5
    assert rtt["syscall"]["exits_to_pyvmm_per_op"] >= 1
    assert console["hardware"]["exits_to_pyvmm_per_op"] >= 64
    assert console["syscall"]["exits_to_pyvmm_per_op"] < 2
    assert rtt["hardware"]["device_state_bytes"]["lapic"] == 2 * 1024
    assert rtt["hardware"]["vmm_lines"] == 0 and console["hardware"]["vmm_lines"] > 0
    for side in ("hardware", "syscall"):
        assert rtt[side]["host_cpu_ns_per_op"] > 0
        assert rtt[side]["median_ns"] > 0


# -- pure logic: a backend without the hardware, the UART, the bus ----------------------
def test_a_backend_without_an_in_kernel_lapic_is_refused_in_one_line():
    with pytest.raises(HwApiError) as e:
        check_backend(lambda cap: 0 if cap == Cap.SPLIT_IRQCHIP else 1)
    assert "KVM_CAP_SPLIT_IRQCHIP" in str(e.value) and "\n" not in str(e.value)


def _uart(room: list[int]):
    sent = bytearray()

    def send(b: bytes) -> int:
        if room[0] < len(b):
            return 0
        room[0] -= len(b)
        sent.extend(b)
        return len(b)

    return Uart16550(send, lambda n: room[0] >= n), sent


def test_uart_transmits_and_reports_back_pressure_in_lsr():
    room = [FIFO_DEPTH + 1]
    u, sent = _uart(room)
    assert u.read(LSR, 1) & LSR_THRE
    for b in b"hello, world!!!!":  # 16 bytes: one FIFO's worth
        u.write(0, 1, b)
    assert bytes(sent) == b"hello, world!!!!"
    assert not u.read(LSR, 1) & LSR_THRE  # one byte of room left: not a FIFO's worth
    u.write(0, 1, ord("x"))
    u.write(0, 1, ord("y"))  # no room: lost, as on hardware
    assert u.bytes_out == 17 and u.overruns == 1


def test_uart_loopback_fifo_is_bounded_and_sets_overrun():
    u, sent = _uart([1 << 20])
    u.write(MCR, 1, MCR_LOOP)
    for i in range(100):
        u.write(0, 1, i)
    assert sent == b""  # loopback: nothing leaves the chip
    assert u.read(LSR, 1) & LSR_OE
    assert [u.read(0, 1) for _ in range(FIFO_DEPTH)] == list(range(FIFO_DEPTH))
    assert u.read(0, 1) == 0 and len(u.state().rx) == 0
    assert u.overruns == 100 - FIFO_DEPTH


def test_uart_survives_random_register_traffic():
    rng = random.Random(16)
    u, _sent = _uart([1 << 20])
    for _ in range(20000):
        offset, size = rng.randrange(8), rng.choice((1, 1, 1, 2, 4))
        if rng.random() < 0.5:
            u.write(offset, size, rng.getrandbits(32))
        else:
            assert 0 <= u.read(offset, size) < 1 << (8 * size)
    assert len(u.state().pack()) <= 9 + FIFO_DEPTH  # bounded whatever the guest did
    u.write(3, 1, 0)  # DLAB off
    u.write(SCR, 1, 0x5A)
    assert u.read(SCR, 1) == 0x5A
    assert u.floating > 0


class _Io:
    def __init__(self, port, size, count, data_offset, direction):
        self.port, self.size, self.count, self.data_offset, self.direction = port, size, count, data_offset, direction


class _Run:
    def __init__(self, io):
        self.exit = type("E", (), {"io": io})()


def test_port_bus_refuses_what_it_cannot_serve():
    u, sent = _uart([1 << 20])
    bus = PortBus()
    bus.add(0x3F8, 8, u)
    with pytest.raises(ValueError):
        bus.add(0x3FC, 8, u)
    page = memoryview(bytearray(4096))
    page[100:103] = b"abc"
    assert bus.handle(_Run(_Io(0x3F8, 1, 3, 100, 1)), page)  # rep outsb of 3 bytes
    assert bytes(sent) == b"abc"
    assert not bus.handle(_Run(_Io(0x80, 1, 1, 100, 1)), page)  # nobody's port
    assert not bus.handle(_Run(_Io(0x3F8, 1, 2, 4095, 1)), page)  # data past the page
    assert not bus.handle(_Run(_Io(0x3F8, 3, 1, 100, 1)), page)  # not a port size
