"""``pyvmm run --gdb``: a gdb remote stub (threads = vCPUs, addresses through each vCPU's CR3).

- :mod:`pyvmm.gdb.rsp`: the protocol's framing, checksums and escaping (pure);
- :mod:`pyvmm.gdb.target`: the target description and the register file;
- :mod:`pyvmm.gdb.breakpoints`: int3 breakpoints, DR slots, stepping watchpoints (pure);
- :mod:`pyvmm.gdb.vmem`: guest-virtual memory through a vCPU's page tables;
- :mod:`pyvmm.gdb.control`: the all-stop gate every vCPU waits in while gdb looks;
- :mod:`pyvmm.gdb.packets`: the replies; :mod:`pyvmm.gdb.stub`: the connection's thread;
- :mod:`pyvmm.gdb.listen`: ``--gdb`` parsing and the listening socket (before seccomp).

docs/debugging.md shows a session.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pyvmm.gdb.listen import GdbAddress, GdbSetupError, bound_address, open_listener, parse_gdb_address
from pyvmm.gdb.stub import GdbServices, GdbStub
from pyvmm.gdb.vmem import GuestView, LoadedRange

if TYPE_CHECKING:
    from pyvmm.loader import Segment

__all__ = [
    "GdbAddress",
    "GdbServices",
    "GdbSetupError",
    "GdbStub",
    "GuestView",
    "bound_address",
    "emulated_kernel",
    "load_map",
    "open_listener",
    "parse_gdb_address",
]


def emulated_kernel() -> bool:
    """True where KVM runs guest kernel code in its instruction emulator and CPL3 code
    natively (PVM): there data breakpoints never fire and CPL3 breakpoints are not reported."""
    return os.path.isdir("/sys/module/kvm_pvm")


def load_map(segments: list[Segment]) -> tuple[LoadedRange, ...]:
    """Where each loaded ELF segment is linked and where it was put (:class:`GuestView`'s fallback)."""
    return tuple(LoadedRange(s.vaddr, s.gpa, s.memsz) for s in segments if s.vaddr >= 0)
