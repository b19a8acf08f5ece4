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
    assert "hw: doorbell vector=32" in run.stdout  # NOTIFY's in-kernel path: port 0xf6 -> our upcall vector
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
    only = "sc-notify-rtt,hw-ipi-rtt,sc-notify-kernel,sc-console-64,hw-console-64"
    run = pyvmm("bench", "--hw-api", "--only", only, "--iters", "40", "--reps", "1", "--json", str(out), timeout=300)
    assert run.returncode == 0, run
    assert "system-call API vs hardware API, per operation" in run.stdout
    comparison = {c["workload"]: c for c in json.loads(out.read_text())["comparison"]}
    rtt, console = comparison["notify round trip"], comparison["console 64 bytes"]
    # What the table is for, observably: the LAPIC path never reaches pyvmm, the syscall one
    # does (NOTIFY+BLOCK, then the answer's BLOCK return); the UART takes an exit per byte.
    assert rtt["hardware"]["exits_to_pyvmm_per_op"] < 0.5
    assert rtt["syscall+kernel"]["exits_to_pyvmm_per_op"] < 0.5  # the doorbell never reaches pyvmm
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


# -- virtio-mmio block --------------------------------------------------------------------
@pytest.mark.kvm
def test_virtio_blk_writes_flushes_and_reads_the_disk(tmp_path: Path):
    img = tmp_path / "d.img"
    img.write_bytes(bytes(1 << 20))
    run = pyvmm("run", "--hw-api", "--disk", str(img), "--cmdline", "test=hwapi mode=disk")
    assert run.returncode == 0, run
    assert "hw: virtio-blk sectors=2048 write=0 flush=0 read=0 same=1 past-end=-1" in run.stdout
    data = img.read_bytes()
    assert data[4096 : 4096 + 8192] == bytes((i * 7 + 1) & 0xFF for i in range(8192))
    assert data[:4096] == bytes(4096)  # sector 8 is where it went, nothing before


@pytest.mark.kvm
def test_virtio_blk_is_absent_without_a_disk_and_survives_a_hostile_queue(tmp_path: Path):
    run = pyvmm("run", "--hw-api", "--cmdline", "test=hwapi mode=disk")
    assert run.returncode == 3 and "hw: no virtio-blk" in run.stdout, run  # DeviceID 0
    img = tmp_path / "d.img"
    img.write_bytes(bytes(1 << 20))
    run = pyvmm("run", "--hw-api", "--disk", str(img), "--cmdline", "test=hwapi mode=virtio-hostile")
    assert run.returncode == 0, run
    # A descriptor loop, then a descriptor past RAM: each is DEVICE_NEEDS_RESET (0x40), no crash.
    assert "hw: virtio-hostile loop-status=0x4f wild-status=0x4f" in run.stdout
    assert "Traceback" not in run.stderr


class _Mem:
    """Guest RAM for the device as pure logic: a bytearray behind the same checked calls."""

    def __init__(self, size: int) -> None:
        from pyvmm.memory import GuestMemoryError

        self.buf, self.size, self._err = bytearray(size), size, GuestMemoryError

    def check(self, gpa: int, n: int) -> int:
        if not (0 <= n <= self.size and 0 <= gpa <= self.size - n):
            raise self._err(gpa, n, self.size)
        return gpa

    def read(self, gpa: int, n: int) -> bytes:
        return bytes(self.buf[self.check(gpa, n) : gpa + n])

    def write(self, gpa: int, data) -> None:
        self.buf[self.check(gpa, len(data)) : gpa + len(data)] = bytes(data)

    def view(self, gpa: int, n: int) -> memoryview:
        return memoryview(self.buf)[self.check(gpa, n) : gpa + n]


def _virtio(tmp_path: Path):
    import struct

    from pyvmm.devices.block import BlockDevice
    from pyvmm.hw import virtio_blk as v

    img = tmp_path / "d.img"
    img.write_bytes(bytes(64 << 10))
    disk = BlockDevice.open("disk0", str(img))
    mem = _Mem(1 << 20)
    dev = v.VirtioMmioBlock(mem, disk)
    desc, avail, used = 0x1000, 0x2000, 0x3000

    def setup() -> None:
        dev.write(0x070, 4, 0)
        dev.write(0x070, 4, v.S_ACKNOWLEDGE | v.S_DRIVER)
        dev.write(0x024, 4, 1)
        dev.write(0x020, 4, 1)
        dev.write(0x070, 4, 11)
        for reg, addr in ((0x080, desc), (0x090, avail), (0x0A0, used)):
            dev.write(reg, 4, addr)
        dev.write(0x038, 4, 4)
        dev.write(0x044, 4, 1)
        dev.write(0x070, 4, 15)

    def submit(descs: list[tuple[int, int, int, int]], head: int = 0, idx: int = 1) -> int:
        for i, d in enumerate(descs):
            mem.write(desc + 16 * i, struct.pack("<QIHH", *d))
        mem.write(avail + 4, struct.pack("<H", head))
        mem.write(avail + 2, struct.pack("<H", idx))
        dev.write(0x050, 4, 0)
        return dev.read(0x070, 4)

    return dev, mem, disk, img, setup, submit, v


def test_virtio_blk_serves_requests_as_pure_logic(tmp_path: Path):
    import struct

    dev, mem, disk, img, setup, submit, v = _virtio(tmp_path)
    try:
        assert dev.read(0, 4) == v.MAGIC and dev.read(8, 4) == v.DEVICE_BLOCK
        assert dev.read(0x100, 8) == (64 << 10) // 512  # capacity in sectors
        setup()
        mem.write(0x5000, struct.pack("<IIQ", v.T_OUT, 0, 2))
        mem.write(0x6000, b"x" * 1024)
        status = submit([(0x5000, 16, 1, 1), (0x6000, 1024, 1, 2), (0x7000, 1, 2, 0)])
        assert status == 15 and mem.read(0x7000, 1) == b"\0"
        assert img.read_bytes()[1024:2048] == b"x" * 1024
        assert struct.unpack("<H", mem.read(0x3002, 2))[0] == 1  # used idx
        mem.write(0x5000, struct.pack("<IIQ", 99, 0, 0))  # unknown type: UNSUPP, not a crash
        submit([(0x5000, 16, 1, 1), (0x7000, 1, 2, 0)], idx=2)
        assert mem.read(0x7000, 1) == bytes((v.BLK_S_UNSUPP,))
        mem.write(0x5000, struct.pack("<IIQ", v.T_OUT, 0, 127))  # crosses the end: IOERR
        submit([(0x5000, 16, 1, 1), (0x6000, 1024, 1, 2), (0x7000, 1, 2, 0)], idx=3)
        assert mem.read(0x7000, 1) == bytes((v.BLK_S_IOERR,))
    finally:
        disk.close()


@pytest.mark.parametrize(
    "case",
    ["loop", "past-ram", "wrapping", "indirect", "index", "flood", "ring-past-ram", "no-status"],
)
def test_virtio_blk_contains_a_hostile_queue(tmp_path: Path, case: str):
    import struct

    dev, mem, disk, img, setup, submit, v = _virtio(tmp_path)
    try:
        setup()
        mem.write(0x5000, struct.pack("<IIQ", v.T_OUT, 0, 0))
        hdr = (0x5000, 16, 1, 1)
        descs, idx = {
            "loop": ([hdr, (0x6000, 16, 1, 0)], 1),
            "past-ram": ([hdr, (1 << 20, 16, 1, 2), (0x7000, 1, 2, 0)], 1),
            "wrapping": ([hdr, (0xFFFF_FFFF_FFFF_F000, 0x2000, 1, 2), (0x7000, 1, 2, 0)], 1),
            "indirect": ([(0x5000, 16, 4, 0)], 1),
            "index": ([hdr, (0x6000, 16, 1, 200)], 1),
            "flood": ([hdr, (0x7000, 1, 2, 0)], 50000),
            "ring-past-ram": ([hdr, (0x7000, 1, 2, 0)], 1),
            "no-status": ([(0x5000, 16, 0, 0)], 1),
        }[case]
        if case == "ring-past-ram":
            dev.write(0x0A0, 4, 0xFFFF_F000)  # the used ring outside RAM
        status = submit(descs, idx=idx)
        assert status & v.S_NEEDS_RESET and dev.errors == 1
        assert img.read_bytes() == bytes(64 << 10)  # nothing written
        submit([hdr, (0x7000, 1, 2, 0)], idx=idx + 1)
        assert dev.errors == 1 and dev.requests == 0  # broken until reset: serves nothing
        setup()  # a reset brings it back
        assert not dev.read(0x070, 4) & v.S_NEEDS_RESET
        submit([hdr, (0x6000, 512, 1, 2), (0x7000, 1, 2, 0)], idx=1)
        assert dev.requests == 1 and mem.read(0x7000, 1) == b"\0"
    finally:
        disk.close()
