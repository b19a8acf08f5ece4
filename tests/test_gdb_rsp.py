"""The gdb stub's pure logic: framing, checksums, escaping, registers, breakpoint slots."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pyvmm.gdb import rsp
from pyvmm.gdb.breakpoints import BreakpointError, HwKind, HwSlots, SoftWatch, SwBreakpoints
from pyvmm.gdb.listen import GdbSetupError, parse_gdb_address
from pyvmm.gdb.target import REGISTERS, REGNUM, RegisterFile, target_xml
from pyvmm.kvm import structs as s


def test_frame_and_checksum():
    assert rsp.frame(b"OK") == b"$OK#9a"
    assert rsp.checksum(b"") == 0
    assert rsp.frame(b"") == b"$#00"


def test_reader_packets_acks_interrupt_and_noise():
    r = rsp.PacketReader()
    events = r.feed(b"+junk$qC#b4-\x03$g#67")
    kinds = [e.kind for e in events]
    assert kinds == [
        rsp.EventKind.ACK,
        rsp.EventKind.PACKET,
        rsp.EventKind.NAK,
        rsp.EventKind.INTERRUPT,
        rsp.EventKind.PACKET,
    ]
    assert events[1].payload == b"qC" and events[4].payload == b"g"


def test_reader_split_across_feeds():
    r = rsp.PacketReader()
    assert r.feed(b"$m20") == []
    assert r.feed(b"0,4#") == []
    (event,) = r.feed(b"%02x" % rsp.checksum(b"m200,4"))
    assert event == rsp.Event(rsp.EventKind.PACKET, b"m200,4")


def test_reader_bad_checksum_and_bad_digits():
    r = rsp.PacketReader()
    assert [e.kind for e in r.feed(b"$g#00$g#zz")] == [rsp.EventKind.BAD, rsp.EventKind.BAD]
    assert r.feed(b"$g#67")[0].kind is rsp.EventKind.PACKET  # and it recovers


def test_reader_oversized_packet_is_bounded_and_refused():
    r = rsp.PacketReader(max_packet=16)
    payload = b"X" * 1000
    (event,) = r.feed(rsp.frame(payload))
    assert event.kind is rsp.EventKind.BAD
    assert len(r._buf) == 0
    assert r.feed(rsp.frame(b"qC"))[0].payload == b"qC"


def test_reader_restarts_on_a_new_dollar():
    r = rsp.PacketReader()
    (event,) = r.feed(b"$garb$qC#b4")
    assert event.payload == b"qC"


@pytest.mark.parametrize("data", [b"", b"plain", b"$#}*", bytes(range(256))])
def test_escape_round_trip(data):
    escaped = rsp.escape(data)
    assert not any(c in b"$#*" for c in escaped)
    assert rsp.unescape(escaped) == data


def test_escape_encoding():
    assert rsp.escape(b"a}b") == b"a}]b"  # '}' ^ 0x20 == ']'


def test_parse_int_rejects_garbage():
    assert rsp.parse_int(b"1f") == 0x1F
    for bad in (b"", b"-1", b"0x10", b"zz", b" 1"):
        with pytest.raises(ValueError):
            rsp.parse_int(bad)


def test_hex_le():
    assert rsp.hex_u64_le(0x1122, 4) == "22110000"
    assert rsp.parse_hex_le("22110000") == 0x1122


def test_target_xml_is_amd64_with_core_sse_segments_and_sys():
    root = ET.fromstring(target_xml().split("\n", 2)[2])
    assert root.find("architecture").text == "i386:x86-64"
    features = {f.get("name"): [r.get("name") for r in f.findall("reg")] for f in root.findall("feature")}
    core = features["org.gnu.gdb.i386.core"]
    # gdb's amd64 code requires these 40 registers in this order
    assert core[:16] == "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15".split()
    assert core[16:24] == ["rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs"]
    assert len(core) == 40 and core[24] == "st0" and core[-1] == "fop"
    assert features["org.gnu.gdb.i386.segments"] == ["fs_base", "gs_base"]
    assert {"cr0", "cr2", "cr3", "cr4", "efer"} <= set(features["org.pyvmm.x86.sys"])
    regnums = [int(r.get("regnum")) for f in root.findall("feature") for r in f.findall("reg")]
    assert regnums == list(range(len(REGISTERS)))


def _kvm_state():
    regs, sregs, fpu = s.KvmRegs(), s.KvmSregs(), s.KvmFpu()
    regs.rax, regs.rsp, regs.rip, regs.rflags = 0x1122334455667788, 0x7000, 0x200A90, 0x246
    sregs.cs.selector, sregs.fs.base, sregs.cr3, sregs.efer = 8, 0xF5, 0x10000, 0xD01
    fpu.xmm[1][0] = 0xAB
    return regs, sregs, fpu


def test_register_file_encodes_in_gdb_order():
    rf = RegisterFile.from_kvm(*_kvm_state())
    text = rf.encode()
    assert len(text) == sum(r.bits for r in REGISTERS) // 4
    assert text.startswith("8877665544332211")
    assert rf.encode_one(REGNUM["rip"]) == "900a200000000000"
    assert rf.encode_one(REGNUM["rsp"]) == "0070000000000000"  # rsp is gdb's 8th, KVM's 7th
    assert rf.encode_one(REGNUM["eflags"]) == "46020000"
    assert rf.encode_one(REGNUM["cs"]) == "08000000"
    assert rf.encode_one(REGNUM["fs_base"]) == "f500000000000000"
    assert rf.encode_one(REGNUM["cr3"]) == "0000010000000000"
    assert rf.values[REGNUM["xmm1"]] == 0xAB


def test_register_file_decode_and_apply_only_writable():
    regs, sregs, fpu = _kvm_state()
    rf = RegisterFile.from_kvm(regs, sregs, fpu)
    values = list(rf.values)
    values[REGNUM["rbx"]] = 7
    values[REGNUM["eflags"]] = 0x202
    values[REGNUM["cr3"]] = 0xDEAD000  # read-only: not applied
    changed = rf.decode(RegisterFile(values).encode())
    out = s.KvmRegs()
    changed.apply_to(out)
    assert out.rbx == 7 and out.rflags == 0x202 and out.rip == 0x200A90
    short = rf.decode("01" * 8)  # a short G leaves the rest alone
    assert short.values[0] == 0x0101010101010101 and short.values[1:] == rf.values[1:]


class _Mem:
    def __init__(self):
        self.b = bytearray(64)

    def read(self, gpa, n):
        return bytes(self.b[gpa : gpa + n])

    def write(self, gpa, data):
        self.b[gpa : gpa + len(data)] = data


def test_sw_breakpoints_plant_shadow_and_restore():
    mem = _Mem()
    mem.write(0, bytes(range(64)))
    bps = SwBreakpoints()
    bps.insert(mem, 0x1000 + 5, 5)
    bps.insert(mem, 0x1000 + 5, 5)  # twice: one int3, the original kept
    assert mem.b[5] == 0xCC and bps.planted_at(5) and 0x1005 in bps
    assert bps.shadow(0, mem.read(0, 8)) == bytes(range(8))
    assert bps.remove(mem, 0x1005) and mem.b[5] == 5
    assert not bps.remove(mem, 0x1005)


def test_hw_slots_dr7_and_full():
    slots = HwSlots()
    assert slots.dr7() == 1 << 10  # nothing armed
    assert slots.insert(HwKind.EXECUTE, 0x200A90, 1) == 0
    assert slots.insert(HwKind.WRITE, 0x352080, 4) == 1
    dr7 = slots.dr7()
    assert dr7 & 0b11 == 0b01 and (dr7 >> 16) & 0xF == 0  # slot 0: local, execute, len 1
    assert (dr7 >> 2) & 1 and (dr7 >> 20) & 0b11 == 0b01 and (dr7 >> 22) & 0b11 == 0b11  # slot 1: write, 4 bytes
    assert slots.debugregs()[:2] == (0x200A90, 0x352080)
    assert slots.hit(0b10).addr == 0x352080
    slots.insert(HwKind.ACCESS, 0x1000, 8)
    slots.insert(HwKind.EXECUTE, 0x2000, 1)
    with pytest.raises(BreakpointError, match="all 4 debug registers"):
        slots.insert(HwKind.EXECUTE, 0x3000, 1)
    with pytest.raises(BreakpointError, match="aligned"):
        HwSlots().insert(HwKind.WRITE, 0x1001, 4)
    with pytest.raises(BreakpointError, match="1, 2, 4 or 8"):
        HwSlots().insert(HwKind.WRITE, 0x1000, 3)
    assert slots.remove(HwKind.EXECUTE, 0x2000, 1) and len(slots) == 3


def test_soft_watch_reports_the_change_once():
    mem = {0x10: b"\0\0\0\0"}
    w = SoftWatch()
    w.add(0x10, 4, mem[0x10])
    assert w.changed(lambda a, n: mem[a]) is None
    mem[0x10] = b"\1\0\0\0"
    assert w.changed(lambda a, n: mem[a]) == 0x10
    assert w.changed(lambda a, n: mem[a]) is None
    assert w.changed(lambda a, n: None) is None  # unreadable now: skipped


@pytest.mark.parametrize(
    "text,expected",
    [
        ("127.0.0.1:1234", ("127.0.0.1", 1234, "")),
        (":0", ("127.0.0.1", 0, "")),
        ("[::1]:99", ("::1", 99, "")),
        ("unix:/tmp/x.sock", ("", 0, "/tmp/x.sock")),
    ],
)
def test_parse_gdb_address(text, expected):
    a = parse_gdb_address(text)
    assert (a.host, a.port, a.path) == expected


@pytest.mark.parametrize("text", ["", "1234", "host:", "host:port", "h:99999", "h:-1", "unix:", "h:\uff11\uff12"])
def test_parse_gdb_address_refuses(text):
    with pytest.raises(GdbSetupError, match="--gdb"):
        parse_gdb_address(text)
