"""A 16550A UART at COM1 for the hardware-API mode (``pyvmm run --hw-api``): the console
the way QEMU, Firecracker and kvmtool serve it, one port exit per register access.

Transmit only, polled: a byte written to THR goes to the console channel's output
buffer at once (so THR is always empty again and LSR always says so, unless the
console's reader has stopped reading: then LSR says "not empty" until there is room,
and a byte written anyway is dropped and counted, as a real UART overruns). Receive
is not offered (LSR.DR stays 0, RBR reads 0) and no interrupt is ever raised: IER is
stored and ignored. Every register is one byte: a wider access uses its low byte, and a
``rep`` string access (one exit, up to a page of elements) is that many accesses. Nothing
a guest does here can make pyvmm hold more than these eight registers.

It exists to be measured against the console channel (``pyvmm bench --hw-api``):
:data:`STATE_BYTES` is what a snapshot of it would have to save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.devices.base import ChannelError
from pyvmm.paravirt.abi import Errno

if TYPE_CHECKING:
    from pyvmm.devices.console import Console

COM1 = 0x3F8
PORTS = range(COM1, COM1 + 8)

_THR, _IER, _IIR_FCR, _LCR, _MCR, _LSR, _MSR, _SCR = range(8)
_LCR_DLAB = 0x80
_LSR_THRE = 0x20  # transmit holding register empty
_LSR_TEMT = 0x40  # transmitter empty
_IIR_NO_INTERRUPT_FIFO = 0xC1  # FIFOs on, no interrupt pending
_MSR_CARRIER = 0xB0  # DCD, DSR, CTS: a line that is always there
#: What a snapshot of this device would save: DLL, DLM, IER, LCR, MCR, SCR, FCR (and nothing queued).
STATE_BYTES = 7


@dataclass
class UartRegisters:
    dll: int = 0x01  # divisor 1: 115200 baud, as firmware leaves it
    dlm: int = 0
    ier: int = 0
    lcr: int = 0x03  # 8N1
    mcr: int = 0x08  # OUT2
    scr: int = 0
    fcr: int = 0


class Uart16550:
    """COM1, its transmitter feeding *console* (the VM's console channel)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.regs = UartRegisters()
        self.bytes_out = 0
        self.dropped = 0  # bytes written while LSR said "not empty"

    @staticmethod
    def owns(port: int) -> bool:
        return COM1 <= port < COM1 + 8

    def read(self, port: int) -> int:
        """The byte an ``in`` from *port* (one of :data:`PORTS`) reads."""
        r = self.regs
        off = port - COM1
        if off == _THR:
            return r.dll if r.lcr & _LCR_DLAB else 0  # RBR: nothing is ever received
        if off == _IER:
            return r.dlm if r.lcr & _LCR_DLAB else r.ier
        if off == _IIR_FCR:
            return _IIR_NO_INTERRUPT_FIFO
        if off == _LCR:
            return r.lcr
        if off == _MCR:
            return r.mcr
        if off == _LSR:
            return _LSR_THRE | _LSR_TEMT if self.console.has_output_space() else 0
        if off == _MSR:
            return _MSR_CARRIER
        return r.scr

    def write(self, port: int, value: int) -> None:
        """An ``out`` of byte *value* to *port* (one of :data:`PORTS`)."""
        r = self.regs
        off = port - COM1
        value &= 0xFF
        if off == _THR:
            if r.lcr & _LCR_DLAB:
                r.dll = value
            else:
                self._transmit(value)
        elif off == _IER:
            if r.lcr & _LCR_DLAB:
                r.dlm = value
            else:
                r.ier = value & 0x0F
        elif off == _IIR_FCR:
            r.fcr = value
        elif off == _LCR:
            r.lcr = value
        elif off == _MCR:
            r.mcr = value & 0x1F
        elif off == _SCR:
            r.scr = value
        # LSR and MSR are read-only: writes are ignored, as on the chip.

    def _transmit(self, value: int) -> None:
        try:
            sent = self.console.send(memoryview(bytes((value,))), 0)
        except ChannelError as e:
            if e.errno not in (Errno.EAGAIN, Errno.EPIPE, Errno.EIO):
                raise
            sent = 0
        except OSError:  # the console's writer is gone: the byte is lost, as on a cut line
            sent = 0
        if sent == 1:
            self.bytes_out += 1
        else:
            self.dropped += 1

    def io(self, port: int, is_write: bool, data: bytes, size: int = 1) -> bytes:
        """One port-I/O exit: *data* is its ``size`` x ``count`` bytes (written, or the
        length of what an ``in`` reads). Each element is one access of its low byte."""
        step = max(size, 1)
        if is_write:
            for value in data[::step]:
                self.write(port, value)
            return b""
        out = bytearray(len(data) or 1)
        for i in range(0, len(out), step):
            out[i] = self.read(port)
        return bytes(out)
