"""The GDB remote serial protocol's framing, as pure logic (no sockets).

A packet is ``$payload#cc``: ``cc`` is the payload's byte sum modulo 256 in
two hex digits. Inside a payload ``}`` escapes the next byte (XOR 0x20), and
``$ # } *`` must be escaped in binary data; ``*`` is run-length encoding,
which only a stub sends, so this side only decodes what gdb sends and never
encodes runs. Outside packets gdb sends ``+``/``-`` acknowledgements and the
interrupt byte ``0x03`` (Ctrl-C).

:class:`PacketReader` turns a byte stream into :class:`Event` values; it never
raises on bad input: a bad checksum is a :attr:`EventKind.BAD` (the stub NAKs
it, gdb retransmits), an oversized packet is dropped the same way, so a
hostile or confused peer costs at most :data:`MAX_PACKET` bytes of buffer.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

#: The largest payload accepted (advertised as ``PacketSize`` in ``qSupported``).
MAX_PACKET = 16384
INTERRUPT = 0x03
_ESCAPE = 0x7D  # '}'
_MUST_ESCAPE = frozenset(b"$#}*")


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFF


def frame(payload: bytes) -> bytes:
    """``$payload#cc`` (the caller escapes binary data first, see :func:`escape`)."""
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def escape(data: bytes) -> bytes:
    """Binary data made safe inside a payload (``qXfer`` replies, ``X`` packets)."""
    if not any(b in _MUST_ESCAPE for b in data):
        return data
    out = bytearray()
    for b in data:
        if b in _MUST_ESCAPE:
            out += bytes((_ESCAPE, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The inverse of :func:`escape`; a trailing lone ``}`` is dropped."""
    if _ESCAPE not in data:
        return data
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == _ESCAPE:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


class EventKind(enum.Enum):
    PACKET = "packet"  # a well-formed packet: ``payload`` (still escaped: binary packets unescape their data)
    BAD = "bad"  # checksum mismatch or oversized: answer ``-``
    INTERRUPT = "interrupt"  # 0x03 outside a packet
    ACK = "ack"
    NAK = "nak"


class Event(NamedTuple):
    kind: EventKind
    payload: bytes = b""


class PacketReader:
    """Incremental parser: :meth:`feed` bytes as they arrive, get the complete events."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._max = max_packet
        self._buf = bytearray()
        self._in_packet = False
        self._oversized = False
        self._csum: bytearray | None = None  # collecting the two checksum digits

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for b in data:
            if self._csum is not None:
                self._csum.append(b)
                if len(self._csum) == 2:
                    events.append(self._finish())
                continue
            if self._in_packet:
                if b == 0x23:  # '#'
                    self._csum = bytearray()
                elif b == 0x24:  # '$': a new packet restarts (the old one was cut short)
                    self._buf.clear()
                    self._oversized = False
                elif len(self._buf) < self._max:
                    self._buf.append(b)
                else:
                    self._oversized = True
                continue
            if b == 0x24:
                self._in_packet = True
            elif b == INTERRUPT:
                events.append(Event(EventKind.INTERRUPT))
            elif b == 0x2B:  # '+'
                events.append(Event(EventKind.ACK))
            elif b == 0x2D:  # '-'
                events.append(Event(EventKind.NAK))
            # anything else between packets is line noise: ignored, as gdbserver does
        return events

    def _finish(self) -> Event:
        digits = bytes(self._csum or b"")
        payload = bytes(self._buf)
        oversized = self._oversized
        self._csum = None
        self._buf.clear()
        self._in_packet = False
        self._oversized = False
        try:
            good = int(digits, 16) == checksum(payload)
        except ValueError:
            good = False
        if not good or oversized:
            return Event(EventKind.BAD)
        return Event(EventKind.PACKET, payload)


def hex_u64_le(value: int, size: int = 8) -> str:
    """A register value as gdb wants it in ``g``/``p`` replies: target (little-endian) byte order."""
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()


def parse_hex_le(text: str) -> int:
    """The inverse of :func:`hex_u64_le`. Raises ``ValueError``."""
    return int.from_bytes(bytes.fromhex(text), "little")


def parse_int(text: str | bytes) -> int:
    """A hex number in a packet (``addr``, ``length``). Raises ``ValueError`` (also for empty or signed)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not text or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not a hex number: {text!r}")
    return int(text, 16)
