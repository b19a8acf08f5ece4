"""A 16550A UART at COM1 (``--hw-api``): the hardware-API console, one port exit per byte.

This is the console QEMU and Firecracker give a guest: eight byte-wide registers at
``0x3f8``, each access a ``KVM_EXIT_IO`` served here. It is polled: there is no
interrupt line (the split irqchip has no IOAPIC to route IRQ 4 through), so ``IER``
is stored but raises nothing and ``IIR`` always reads "no interrupt pending".

Transmit is instant while the console's output buffer has room: ``LSR`` reports
THRE|TEMT then, and clears them while the buffer is full, which is the back-pressure
a guest driver polling ``LSR`` before each byte (or each FIFO's worth) respects; a
byte written while THRE is clear is lost, as on real hardware (counted in
:attr:`Uart16550.overruns`). Receive comes only from loopback mode (``MCR`` bit 4),
which drivers use to probe the chip: the guest's console input stays on the console
``RECV`` hypercall.

A hostile guest can only write registers: every value is masked to the bits the
register has, the loopback FIFO holds at most 16 bytes (more are overruns), and an
access of a size other than one byte floats (reads all ones, writes are dropped),
as an 8-bit device on a wider bus does. Nothing here can raise into the run loop.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

COM1_BASE = 0x3F8
REGISTERS = 8
FIFO_DEPTH = 16

# Register offsets from the base (DLAB = LCR bit 7 selects the divisor latch at 0 and 1).
RBR_THR_DLL = 0
IER_DLM = 1
IIR_FCR = 2
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

LCR_DLAB = 0x80
MCR_LOOP = 0x10
LSR_DR = 0x01
LSR_OE = 0x02
LSR_THRE = 0x20
LSR_TEMT = 0x40
IIR_NO_INT = 0x01
IIR_FIFO = 0xC0  # FIFOs enabled, as a 16550A reports them
FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02
MSR_IDLE = 0xB0  # DCD | DSR | CTS: a modem that is there and ready
_STATE = struct.Struct("<9B")


@dataclass
class UartState:
    """What a snapshot of the UART must save (its size is the figure docs/hwapi.md reports)."""

    dll: int = 0x0C  # 9600 baud: the divisor firmware leaves; nothing here depends on it
    dlm: int = 0
    ier: int = 0
    lcr: int = 0x03  # 8N1
    mcr: int = 0
    scr: int = 0
    fcr: int = 0
    lsr_sticky: int = 0  # OE, cleared by reading LSR
    rx: bytes = b""

    def pack(self) -> bytes:
        regs = (self.dll, self.dlm, self.ier, self.lcr, self.mcr, self.scr, self.fcr, self.lsr_sticky, len(self.rx))
        return _STATE.pack(*regs) + self.rx


class Uart16550:
    """COM1. *send(bytes) -> count* takes transmitted bytes (0 when none fit);
    *can_send(n)* says whether *n* more would (the THRE bit: a FIFO's worth)."""

    def __init__(self, send: Callable[[bytes], int], can_send: Callable[[int], bool]) -> None:
        self._send = send
        self._can_send = can_send
        self.s = UartState()
        self._rx: deque[int] = deque()
        self.bytes_out = 0
        self.overruns = 0
        self.floating = 0  # accesses of a size other than 1

    # -- the port bus calls these ----------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if size != 1:
            self.floating += 1
            return (1 << (8 * size)) - 1
        s = self.s
        dlab = s.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                return s.dll
            return self._rx.popleft() if self._rx else 0
        if offset == IER_DLM:
            return s.dlm if dlab else s.ier
        if offset == IIR_FCR:
            return IIR_NO_INT | (IIR_FIFO if s.fcr & FCR_ENABLE else 0)
        if offset == LCR:
            return s.lcr
        if offset == MCR:
            return s.mcr
        if offset == LSR:
            lsr = s.lsr_sticky | (LSR_DR if self._rx else 0)
            s.lsr_sticky = 0
            if s.mcr & MCR_LOOP or self._can_send(FIFO_DEPTH):  # THRE: the whole FIFO may be written
                lsr |= LSR_THRE | LSR_TEMT
            return lsr
        if offset == MSR:
            if s.mcr & MCR_LOOP:  # loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD
                m = s.mcr
                return (m & 1) << 5 | (m & 2) << 3 | (m & 4) << 4 | (m & 8) << 4
            return MSR_IDLE
        return s.scr  # SCR (offset is 0..7: the bus checked)

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 1:
            self.floating += 1
            return
        s = self.s
        value &= 0xFF
        dlab = s.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                s.dll = value
            else:
                self._transmit(value)
        elif offset == IER_DLM:
            if dlab:
                s.dlm = value
            else:
                s.ier = value & 0x0F
        elif offset == IIR_FCR:
            s.fcr = value & 0xC9
            if value & FCR_CLEAR_RX:
                self._rx.clear()
        elif offset == LCR:
            s.lcr = value
        elif offset == MCR:
            s.mcr = value & 0x1F
        elif offset == SCR:
            s.scr = value
        # LSR and MSR are read-only: writes are ignored, as by the chip

    def _transmit(self, byte: int) -> None:
        if self.s.mcr & MCR_LOOP:
            if len(self._rx) >= FIFO_DEPTH:
                self.overruns += 1
                self.s.lsr_sticky |= LSR_OE
            else:
                self._rx.append(byte)
            return
        if self._send(bytes((byte,))) == 1:
            self.bytes_out += 1
        else:
            self.overruns += 1

    def state(self) -> UartState:
        """The registers and the loopback FIFO, as a snapshot would save them."""
        s = self.s
        return UartState(s.dll, s.dlm, s.ier, s.lcr, s.mcr, s.scr, s.fcr, s.lsr_sticky, bytes(self._rx))
