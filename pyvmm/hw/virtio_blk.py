"""A virtio block device over MMIO (virtio 1.x, ``virtio-mmio`` version 2): the hardware-API disk.

One device window at :data:`VIRTIO_MMIO_BASE` in every ``--hw-api`` VM; with a ``--disk``
its DeviceID is 2 (block, backed by the first disk channel), without one 0 ("no device":
a driver ignores it). One virtqueue; features ``VERSION_1`` and ``BLK_F_FLUSH``.

Requests are served synchronously in the ``QueueNotify`` write's exit: when the guest's
notify returns, every available request is done and in the used ring. There is no
interrupt (a split irqchip has no IOAPIC to route a pin through and virtio-mmio has no
MSI): the driver polls the used ring, which it finds complete. This is the cheapest
service a virtio-mmio device can give, so the comparison is kind to the hardware side.

A hostile driver is contained: every descriptor address and length goes through the
checked accessor (:class:`~pyvmm.memory.GuestMemory`); a chain longer than the queue
(a descriptor loop), an indirect descriptor (not offered), an index beyond the queue or
a ring outside RAM puts the device in ``DEVICE_NEEDS_RESET`` (status bit 0x40, the
spec's device error) and it serves nothing more until the driver resets it; a request
the disk cannot serve gets ``VIRTIO_BLK_S_IOERR`` or ``UNSUPP`` in its status byte. A
notify serves at most ``queue_num`` requests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyvmm.devices.base import ChannelError
from pyvmm.memory import GuestMemoryError

VIRTIO_MMIO_BASE = 0xC000_0000  # 3 GiB: below it RAM, above it nothing (a --hw-api VM has <= 3 GiB)
WINDOW = 0x1000
MAGIC = 0x74726976  # "virt"
VERSION = 2
DEVICE_BLOCK = 2
VENDOR = 0x4D565950  # "PYVM"
QUEUE_MAX = 256
SECTOR = 512

F_BLK_FLUSH = 1 << 9
F_VERSION_1 = 1 << 32
FEATURES = F_VERSION_1 | F_BLK_FLUSH

S_ACKNOWLEDGE, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET, S_FAILED = 1, 2, 4, 8, 0x40, 0x80
DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8
BLK_S_OK, BLK_S_IOERR, BLK_S_UNSUPP = 0, 1, 2

_DESC = struct.Struct("<QIHH")
_HDR = struct.Struct("<IIQ")
_DEVICE_ID = b"pyvmm-virtio-blk\0\0\0\0"  # GET_ID: 20 bytes


class VirtqueueError(Exception):
    """The driver broke the virtqueue protocol: the device needs a reset."""


@dataclass
class Queue:
    num: int = 0
    ready: int = 0
    desc: int = 0
    avail: int = 0
    used: int = 0
    last_avail: int = 0
    used_idx: int = 0


class VirtioMmioBlock:
    """The register window and the one queue. *disk* is a block channel (or None)."""

    def __init__(self, memory, disk=None) -> None:
        self.mem = memory
        self.disk = disk
        self.device_id = DEVICE_BLOCK if disk is not None else 0
        self.status = 0
        self.dev_features_sel = 0
        self.drv_features_sel = 0
        self.driver_features = 0
        self.q = Queue()
        self.requests = 0
        self.errors = 0  # times the device entered NEEDS_RESET

    # -- registers (offsets into the window; 4-byte accesses, config space any size) -------
    def read(self, offset: int, size: int) -> int:
        if offset >= 0x100:
            return self._config(offset - 0x100, size)
        if size != 4:
            return 0
        q = self.q
        regs = {
            0x000: MAGIC,
            0x004: VERSION,
            0x008: self.device_id,
            0x00C: VENDOR,
            0x010: (FEATURES >> (32 * self.dev_features_sel)) & 0xFFFF_FFFF if self.dev_features_sel < 2 else 0,
            0x034: QUEUE_MAX,
            0x044: q.ready,
            0x060: 0,  # InterruptStatus: no interrupts (module docstring)
            0x070: self.status,
            0x0FC: 0,  # ConfigGeneration: the config never changes
        }
        return regs.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 4 or self.device_id == 0:
            return
        q = self.q
        value &= 0xFFFF_FFFF
        if offset == 0x014:
            self.dev_features_sel = value
        elif offset == 0x020:
            if self.drv_features_sel < 2:
                shift = 32 * self.drv_features_sel
                self.driver_features = (self.driver_features & ~(0xFFFF_FFFF << shift)) | (value << shift)
        elif offset == 0x024:
            self.drv_features_sel = value
        elif offset == 0x038:
            q.num = value if 0 < value <= QUEUE_MAX and value & (value - 1) == 0 else 0
        elif offset == 0x044:
            q.ready = value & 1
        elif offset == 0x050:
            if value == 0:
                self.notify()
        elif offset == 0x070:
            self._set_status(value & 0xFF)
        elif offset in (0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4):
            field = {0x08: "desc", 0x09: "avail", 0x0A: "used"}[offset >> 4]
            old = getattr(q, field)
            high = offset & 4
            new = (old & 0xFFFF_FFFF) | (value << 32) if high else (old & ~0xFFFF_FFFF) | value
            setattr(q, field, new)

    def _set_status(self, value: int) -> None:
        if value == 0:  # reset
            self.status = 0
            self.driver_features = 0
            self.q = Queue()
            return
        if value & S_FEATURES_OK and self.driver_features & ~FEATURES:
            value &= ~S_FEATURES_OK  # the driver asked for what was not offered: refused
        self.status = value | (self.status & S_NEEDS_RESET)

    def _config(self, offset: int, size: int) -> int:
        sectors = self.disk.size // SECTOR if self.disk is not None else 0
        config = sectors.to_bytes(8, "little") + bytes(24)  # capacity, then what is not offered
        if size not in (1, 2, 4, 8) or offset + size > len(config):
            return 0
        return int.from_bytes(config[offset : offset + size], "little")

    # -- the queue -------------------------------------------------------------------------
    def notify(self) -> None:
        if self.status & S_NEEDS_RESET or not self.status & S_DRIVER_OK or not (self.q.ready and self.q.num):
            return
        try:
            self._serve()
        except (VirtqueueError, GuestMemoryError):
            self.errors += 1
            self.status |= S_NEEDS_RESET

    def _u16(self, gpa: int) -> int:
        return int.from_bytes(self.mem.read(gpa, 2), "little")

    def _serve(self) -> None:
        q, mem = self.q, self.mem
        avail_idx = self._u16(q.avail + 2)
        pending = (avail_idx - q.last_avail) & 0xFFFF
        if pending > q.num:
            raise VirtqueueError(f"{pending} requests in a queue of {q.num}")
        for _ in range(pending):
            head = self._u16(q.avail + 4 + 2 * (q.last_avail % q.num))
            written = self._request(head)
            slot = q.used + 4 + 8 * (q.used_idx % q.num)
            mem.write(slot, struct.pack("<II", head, written))
            q.used_idx = (q.used_idx + 1) & 0xFFFF
            mem.write(q.used + 2, q.used_idx.to_bytes(2, "little"))
            q.last_avail = (q.last_avail + 1) & 0xFFFF
            self.requests += 1

    def _chain(self, head: int) -> list[tuple[int, int, int]]:
        q, out, index = self.q, [], head
        for _ in range(q.num):  # a chain longer than the queue is a loop
            if index >= q.num:
                raise VirtqueueError(f"descriptor {index} outside a queue of {q.num}")
            addr, length, flags, nxt = _DESC.unpack(self.mem.read(q.desc + 16 * index, 16))
            if flags & DESC_F_INDIRECT:
                raise VirtqueueError("indirect descriptor (not offered)")
            self.mem.check(addr, length)
            out.append((addr, length, flags))
            if not flags & DESC_F_NEXT:
                return out
            index = nxt
        raise VirtqueueError("descriptor chain loops")

    def _request(self, head: int) -> int:
        """Serve the request at *head*; the number of bytes written into the guest."""
        chain = self._chain(head)
        if len(chain) < 2 or chain[0][1] < _HDR.size or chain[0][2] & DESC_F_WRITE:
            raise VirtqueueError("a request needs a readable header and a status descriptor")
        st_addr, st_len, st_flags = chain[-1]
        if st_len < 1 or not st_flags & DESC_F_WRITE:
            raise VirtqueueError("the status descriptor is not writable")
        kind, _reserved, sector = _HDR.unpack(self.mem.read(chain[0][0], _HDR.size))
        data = chain[1:-1]
        status, written = self._do(kind, sector, data)
        self.mem.write(st_addr, bytes((status,)))
        return written + 1

    def _do(self, kind: int, sector: int, data: list[tuple[int, int, int]]) -> tuple[int, int]:
        disk, mem = self.disk, self.mem
        want_write = kind in (T_IN, T_GET_ID)
        if any(bool(flags & DESC_F_WRITE) != want_write for _, _, flags in data):
            return BLK_S_IOERR, 0
        total = sum(length for _, length, _ in data)
        try:
            if kind == T_FLUSH:
                disk.flush()
                return BLK_S_OK, 0
            if kind == T_GET_ID:
                if not data:
                    return BLK_S_IOERR, 0
                addr, length, _ = data[0]
                n = min(length, len(_DEVICE_ID))
                mem.write(addr, _DEVICE_ID[:n])
                return BLK_S_OK, n
            if kind not in (T_IN, T_OUT):
                return BLK_S_UNSUPP, 0
            offset = sector * SECTOR
            if sector >= 1 << 54 or offset + total > disk.size:
                return BLK_S_IOERR, 0
            for addr, length, _ in data:
                view = mem.view(addr, length)
                try:
                    done = disk.recv(view, offset) if kind == T_IN else disk.send(view, offset)
                finally:
                    view.release()
                if done != length:
                    return BLK_S_IOERR, 0
                offset += length
            return BLK_S_OK, total if kind == T_IN else 0
        except ChannelError:
            return BLK_S_IOERR, 0

    def state_bytes(self) -> int:
        """What a snapshot must save: the registers and the queue's addresses and indices."""
        return 4 * 5 + 8 * 3 + 4 * 4  # status, selectors, features; ring addresses; num, ready, 2 indices
