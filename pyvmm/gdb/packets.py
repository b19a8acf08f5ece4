"""gdb's packets, answered while the VM is stopped: one :class:`Session` per connection.

Every reply is built here; the transport (:mod:`pyvmm.gdb.stub`) frames and
sends it. A malformed packet is an ``E`` reply, an unknown one the empty reply
(gdb's "not supported"), never an exception.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyvmm.gdb.breakpoints import BreakpointError, HwKind
from pyvmm.gdb.control import Action, StopEvent, StopKind
from pyvmm.gdb.rsp import MAX_PACKET, escape, parse_int, unescape
from pyvmm.gdb.target import REGISTERS, WRITABLE, RegisterFile, target_xml
from pyvmm.kvm.errors import KvmError
from pyvmm.vcpu import VcpuState

if TYPE_CHECKING:
    from pyvmm.gdb.control import DebugControl
    from pyvmm.gdb.stub import GdbServices

OK = b"OK"
E_FAULT = b"E%02x" % errno.EFAULT
E_INVAL = b"E%02x" % errno.EINVAL
E_BUSY = b"E%02x" % errno.EBUSY
E_SRCH = b"E%02x" % errno.ESRCH
#: Memory moved by one ``m``: what fits a PacketSize reply in hex.
MAX_READ = MAX_PACKET // 2 - 16

SUPPORTED = (
    f"PacketSize={MAX_PACKET:x};qXfer:features:read+;qXfer:threads:read+;"
    "swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+"
).encode()


class Session:
    def __init__(self, control: DebugControl, services: GdbServices, send: Callable[[bytes], None]) -> None:
        self.control = control
        self.services = services
        self.vcpus = services.vcpus
        self.view = services.view
        self._send = send
        self.no_ack = False
        #: gdb waits for a stop reply (after c/s/vCont): the VM runs.
        self.waiting = False
        #: The connection is over (detach, kill).
        self.finished = False
        self._g = control.first_gated()  # Hg: registers and memory
        self._c = -1  # Hc: legacy c/s
        self._last: StopEvent | None = None
        self._xml = target_xml().encode()

    # -- events from the transport ------------------------------------------------
    def handle(self, payload: bytes) -> None:
        try:
            reply = self._dispatch(payload)
        except (ValueError, IndexError):
            reply = E_INVAL
        except KvmError:
            reply = E_SRCH  # the vCPU's ioctl failed (it is gone)
        if reply is not None:
            self._send(reply)

    def interrupt(self) -> None:
        """Ctrl-C: stop every vCPU and report SIGINT (or a stop that arrived meanwhile)."""
        if not self.waiting:
            return
        self.control.stop_all()
        if not self.control.has_event():
            self._report(StopEvent(self.control.first_gated(), signal.SIGINT))
        else:
            self.report_stop()

    def report_stop(self) -> None:
        """A vCPU stopped on its own: stop the others, then tell gdb."""
        self.control.stop_all()
        event = self.control.take_event()
        if event is not None:
            self._report(event)

    def lost(self) -> None:
        self.control.detach()

    # -- replies ---------------------------------------------------------------------
    def _report(self, event: StopEvent) -> None:
        self.waiting = False
        self._last = event
        self._g = event.vcpu_id
        if event.note:
            self.services.say(f"vCPU {event.vcpu_id} crashed: {event.note} (stopped for gdb)")
        self._send(self._stop_reply(event))

    def _stop_reply(self, event: StopEvent) -> bytes:
        out = b"T%02xthread:%x;" % (event.signal, event.vcpu_id + 1)
        if event.kind in (StopKind.SWBREAK, StopKind.HWBREAK):
            out += event.kind.value.encode() + b":;"
        elif event.kind in (StopKind.WATCH, StopKind.AWATCH):
            out += b"%s:%x;" % (event.kind.value.encode(), event.addr)
        return out

    def _dispatch(self, p: bytes) -> bytes | None:
        head = p[:1]
        if head == b"?":
            return self._stop_reply(self._last or StopEvent(self._g))
        if head == b"g":
            return self._regs(self._g).encode().encode()
        if head == b"G":
            return self._write_regs(self._g, lambda rf: rf.decode(p[1:].decode()))
        if head == b"p":
            return self._regs(self._g).encode_one(parse_int(p[1:])).encode()
        if head == b"P":
            num, _, value = p[1:].partition(b"=")
            regnum = parse_int(num)
            if REGISTERS[regnum].name not in WRITABLE:
                return E_INVAL
            return self._write_regs(self._g, lambda rf: _with(rf, regnum, value.decode()))
        if head == b"m":
            addr, length = (parse_int(x) for x in p[1:].split(b","))
            data = self._read(addr, min(length, MAX_READ))
            return E_FAULT if data is None else data.hex().encode()
        if head == b"M":
            where, _, hexdata = p[1:].partition(b":")
            addr, length = (parse_int(x) for x in where.split(b","))
            data = bytes.fromhex(hexdata.decode())
            return self._write(addr, data[:length]) if len(data) >= length else E_INVAL
        if head == b"X":
            where, _, raw = p[1:].partition(b":")
            addr, length = (parse_int(x) for x in where.split(b","))
            data = unescape(raw)
            if length == 0:
                return OK  # gdb's probe for X support
            return self._write(addr, data[:length]) if len(data) >= length else E_INVAL
        if head in (b"c", b"s"):
            return self._legacy_resume(Action(head.decode()), p[1:])
        if head in (b"Z", b"z"):
            return self._breakpoint(head == b"Z", p[1:])
        if head == b"H":
            return self._select(p[1:2], p[2:])
        if head == b"T":
            tid = _tid(p[1:])
            return OK if tid is not None and 0 <= tid < len(self.vcpus) else E_SRCH
        if head == b"D":
            self.control.detach()
            self._send(OK)
            self.services.say("gdb detached: the guest runs on")
            self.finished = True
            return None
        if head == b"k":
            self._kill()
            return None
        if head == b"q" or head == b"Q":
            return self._query(p)
        if head == b"v":
            return self._v(p)
        return b""

    # -- registers and memory ----------------------------------------------------------
    def _regs(self, vcpu_id: int) -> RegisterFile:
        fd = self.vcpus[vcpu_id].fd
        return RegisterFile.from_kvm(fd.get_regs(), fd.get_sregs(), fd.get_fpu())

    def _write_regs(self, vcpu_id: int, change: Callable[[RegisterFile], RegisterFile]) -> bytes:
        if not self.control.is_gated(vcpu_id):
            return E_BUSY  # asleep in BLOCK or not started: its own thread would overwrite them
        fd = self.vcpus[vcpu_id].fd
        regs = fd.get_regs()
        change(self._regs(vcpu_id)).apply_to(regs)
        fd.set_regs(regs)
        return OK

    def _cr3(self) -> int:
        return self.vcpus[self._g].fd.get_sregs().cr3

    def _read(self, addr: int, length: int) -> bytes | None:
        cr3 = self._cr3()
        data = self.view.read(cr3, addr, length)
        if not data:
            return data
        # Planted int3s are not part of the guest's code: show what they cover.
        out = bytearray()
        for offset in range(0, len(data), 4096):
            piece = data[offset : offset + 4096]
            gpa = self.view.translate(cr3, addr + offset)
            out += self.control.sw.shadow(gpa, piece) if gpa is not None else piece
        return bytes(out)

    def _write(self, addr: int, data: bytes) -> bytes:
        return OK if self.view.write(self._cr3(), addr, data) else E_FAULT

    # -- running ----------------------------------------------------------------------
    def _legacy_resume(self, action: Action, addr: bytes) -> bytes | None:
        target = self._c if self._c >= 0 else self._g
        if addr:
            self._set_rip(target, parse_int(addr))
        if action is Action.STEP:
            actions = {target: Action.STEP}
        else:
            actions = {v.id: Action.CONTINUE for v in self.vcpus}
        return self._resume(actions)

    def _resume(self, actions: dict[int, Action]) -> bytes | None:
        pending = self.control.resume(actions)
        if pending is not None:
            self._last = pending
            self._g = pending.vcpu_id
            return self._stop_reply(pending)
        self.waiting = True
        # A step asked of a vCPU that cannot run (not started, asleep in BLOCK): done at once.
        for vcpu_id, action in actions.items():
            vcpu = self.vcpus[vcpu_id]
            if action is Action.STEP and (vcpu.state is not VcpuState.RUNNING or not self.control.is_gated(vcpu_id)):
                if not any(a is Action.STEP and self.control.is_gated(v) for v, a in actions.items()):
                    self.control.stop_all()
                    self._report(StopEvent(vcpu_id, kind=StopKind.STEP))
                    break
        return None

    def _set_rip(self, vcpu_id: int, rip: int) -> None:
        if self.control.is_gated(vcpu_id):
            fd = self.vcpus[vcpu_id].fd
            regs = fd.get_regs()
            regs.rip = rip
            fd.set_regs(regs)

    def _vcont(self, spec: bytes) -> bytes | None:
        actions: dict[int, Action] = {}
        for item in spec.split(b";"):
            if not item:
                continue
            verb, _, thread = item.partition(b":")
            code = verb[:1]
            if code not in (b"c", b"C", b"s", b"S"):
                return E_INVAL  # vCont;t / r: not offered in vCont?
            action = Action.STEP if code in (b"s", b"S") else Action.CONTINUE
            if thread:
                tid = _tid(thread)
                if tid is None or tid == -1:  # any, all
                    targets = [v.id for v in self.vcpus]
                elif 0 <= tid < len(self.vcpus):
                    targets = [tid]
                else:
                    return E_SRCH
            else:
                targets = [v.id for v in self.vcpus]
            for vcpu_id in targets:
                actions.setdefault(vcpu_id, action)  # the leftmost action that names a thread wins
        if not actions:
            return E_INVAL
        return self._resume(actions)

    def _kill(self) -> None:
        self.services.say("gdb killed the guest")
        self.finished = True
        self.services.kill()

    # -- breakpoints -------------------------------------------------------------------
    def _breakpoint(self, insert: bool, spec: bytes) -> bytes:
        parts = spec.split(b";")[0].split(b",")
        if len(parts) != 3:
            return E_INVAL
        kind, addr, length = parts[0], parse_int(parts[1]), parse_int(parts[2])
        cr3 = self._cr3()
        if kind in (b"0", b"1") and insert and self.services.emulated_kernel and self.view.is_user(cr3, addr):
            self.services.say(
                f"breakpoint at {addr:#x} refused: it is CPL3 code, and this KVM backend (PVM) runs CPL3 "
                "code natively without reporting breakpoints to pyvmm (they would reach the guest instead)"
            )
            return E_INVAL
        control = self.control
        try:
            if kind == b"0":
                if not insert:
                    control.sw.remove(self.view.memory, addr)
                    return OK
                gpa = self.view.translate(cr3, addr)
                if gpa is None:
                    return E_FAULT
                control.sw.insert(self.view.memory, addr, gpa)
                return OK
            hw_kind = {b"1": HwKind.EXECUTE, b"2": HwKind.WRITE, b"4": HwKind.ACCESS}.get(kind)
            if hw_kind is None:
                return b""  # Z3 (read watchpoints): x86 debug registers have no read-only kind
            if hw_kind is not HwKind.EXECUTE and control.soft_watch:
                return self._soft_watch(insert, hw_kind, cr3, addr, length)
            if insert:
                control.hw.insert(hw_kind, addr, length)
            else:
                control.hw.remove(hw_kind, addr, length)
            return OK
        except BreakpointError as e:
            self.services.say(str(e))
            return E_BUSY
        except Exception:
            return E_FAULT  # the byte could not be read or written: outside RAM

    def _soft_watch(self, insert: bool, kind: HwKind, cr3: int, addr: int, length: int) -> bytes:
        if kind is not HwKind.WRITE:
            return b""  # an access watchpoint cannot be seen by comparing values
        if not insert:
            self.control.soft.remove(addr, length)
            return OK
        current = self.view.read(cr3, addr, length)
        if current is None or len(current) != length:
            return E_FAULT
        self.control.soft.add(addr, length, current)
        return OK

    # -- threads and queries ---------------------------------------------------------------
    def _select(self, which: bytes, thread: bytes) -> bytes:
        tid = _tid(thread)
        if tid is None or tid == -1:
            tid = -1 if which == b"c" else self._g  # Hg0/Hg-1: any thread: keep the current one
        elif not 0 <= tid < len(self.vcpus):
            return E_SRCH
        if which == b"g":
            self._g = tid
        elif which == b"c":
            self._c = tid
        return OK

    def _thread_state(self, vcpu_id: int) -> str:
        vcpu = self.vcpus[vcpu_id]
        if vcpu.state is VcpuState.PARKED:
            return "not started"
        if vcpu.state is VcpuState.EXITED:
            return "exited"
        return "stopped" if self.control.is_gated(vcpu_id) else "asleep in BLOCK/HLT"

    def _threads_xml(self) -> bytes:
        rows = "".join(
            f'<thread id="{v.id + 1:x}" name="vcpu{v.id}">vCPU {v.id}, {self._thread_state(v.id)}</thread>'
            for v in self.vcpus
        )
        return f'<?xml version="1.0"?>\n<threads>{rows}</threads>\n'.encode()

    def _query(self, p: bytes) -> bytes:
        if p.startswith(b"qSupported"):
            return SUPPORTED
        if p == b"QStartNoAckMode":
            self._send(OK)
            self.no_ack = True
            return None
        if p == b"qAttached" or p.startswith(b"qAttached:"):
            return b"1"  # quitting gdb detaches: the guest runs on
        if p == b"qC":
            return b"QC%x" % (self._g + 1)
        if p == b"qfThreadInfo":
            return b"m" + b",".join(b"%x" % (v.id + 1) for v in self.vcpus)
        if p == b"qsThreadInfo":
            return b"l"
        if p.startswith(b"qThreadExtraInfo,"):
            tid = _tid(p[len(b"qThreadExtraInfo,") :])
            if tid is None or not 0 <= tid < len(self.vcpus):
                return E_SRCH
            return f"vCPU {tid}, {self._thread_state(tid)}".encode().hex().encode()
        if p.startswith(b"qXfer:features:read:target.xml:"):
            return _xfer(self._xml, p.rsplit(b":", 1)[1])
        if p.startswith(b"qXfer:threads:read::"):
            return _xfer(self._threads_xml(), p.rsplit(b":", 1)[1])
        if p.startswith(b"qXfer:"):
            return E_INVAL
        return b""  # qOffsets (the ELF is loaded where it is linked), qTStatus, qSymbol...

    def _v(self, p: bytes) -> bytes | None:
        if p == b"vCont?":
            return b"vCont;c;C;s;S"
        if p.startswith(b"vCont;"):
            return self._vcont(p[len(b"vCont;") :])
        if p.startswith(b"vKill"):
            self._send(OK)
            self._kill()
            return None
        return b""  # vMustReplyEmpty, vFile, vRun...


def _tid(text: bytes) -> int | None:
    """gdb thread id -> vCPU id; None for 0 (any) and -1 (all) is -1. Raises ``ValueError``."""
    if text in (b"-1",):
        return -1
    value = parse_int(text.split(b".")[-1] if text.startswith(b"p") else text)
    return None if value == 0 else value - 1


def _with(rf: RegisterFile, regnum: int, text: str) -> RegisterFile:
    from pyvmm.gdb.rsp import parse_hex_le

    values = list(rf.values)
    values[regnum] = parse_hex_le(text)
    return RegisterFile(values)


def _xfer(document: bytes, window: bytes) -> bytes:
    offset, length = (parse_int(x) for x in window.split(b","))
    chunk = document[offset : offset + min(length, MAX_READ)]
    return (b"l" if offset + len(chunk) >= len(document) else b"m") + escape(chunk)
