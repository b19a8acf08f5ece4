"""KVM's binary statistics of one vCPU (``KVM_GET_STATS_FD``, kernel 5.14+).

The kernel counts every VM exit, including those it handles itself (an in-kernel
LAPIC's ICR write, an ioeventfd doorbell, a HLT it sleeps in): the only place those
are visible. ``pyvmm bench --hw-api`` reads them around a measured window to report
exits per operation on both sides of the comparison (docs/hwapi.md).

Layout (Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD"): a header, descriptors
(each 16 bytes plus ``name_size``), then the data, all read with ``pread``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("<IIIIII")  # flags, name_size, num_desc, id_offset, desc_offset, data_offset
_DESC = struct.Struct("<IhHII")  # flags, exponent, size (u64 words), offset, bucket_size
#: Descriptors past this are refused: a kernel bug, not something to allocate for.
_MAX_DESC = 4096


@dataclass(frozen=True)
class _Field:
    offset: int  # into the data block, bytes


class VcpuStats:
    """Read named u64 counters of one vCPU's stats fd (which it owns and closes)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        _flags, name_size, num_desc, _id, desc_off, data_off = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
        if not 0 < num_desc <= _MAX_DESC or not 0 < name_size <= 256:
            raise OSError(f"KVM stats header: {num_desc} descriptors, names of {name_size} bytes")
        size = _DESC.size + name_size
        raw = os.pread(fd, size * num_desc, desc_off)
        self._data_off = data_off
        self._fields: dict[str, _Field] = {}
        for i in range(num_desc):
            _f, _exp, words, offset, _bucket = _DESC.unpack_from(raw, i * size)
            name = raw[i * size + _DESC.size : (i + 1) * size].split(b"\0", 1)[0].decode("ascii", "replace")
            if words == 1:  # counters and gauges; histograms are left out
                self._fields[name] = _Field(offset)

    def names(self) -> list[str]:
        return list(self._fields)

    def read(self, names: tuple[str, ...]) -> dict[str, int]:
        """The current value of each of *names* the kernel has (absent ones are left out)."""
        out = {}
        for name in names:
            f = self._fields.get(name)
            if f is not None:
                out[name] = int.from_bytes(os.pread(self.fd, 8, self._data_off + f.offset), "little")
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
