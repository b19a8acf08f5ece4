"""The boot-info page the guest finds in ``rdi``, and the kernel permissions of the low 2 MiB."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pyvmm.paravirt import abi
from pyvmm.paravirt.abi import Layout
from pyvmm.x86.paging import Pte

if TYPE_CHECKING:
    from pyvmm.devices.base import Channel
    from pyvmm.memory import GuestMemory

#: What every pyvmm VM offers; the channels add theirs (``ChannelTable.features``).
BASE_FEATURES = (
    abi.Feature.CONSOLE
    | abi.Feature.EVENTS
    | abi.Feature.TIMER
    | abi.Feature.SMP
    | abi.Feature.MULTICALL
    | abi.Feature.ADDRESS_SPACES
    | abi.Feature.EXTENSIONS
    | abi.Feature.FILES
)

_RO_DATA = int(Pte.PRESENT | Pte.NO_EXECUTE)
_RW_DATA = int(Pte.PRESENT | Pte.WRITABLE | Pte.NO_EXECUTE)


def low_page_flags(gpa: int) -> int:
    """Kernel permissions for the VMM-reserved low 2 MiB (identity map)."""
    if gpa == Layout.NULL_PAGE:
        return 0  # NULL dereferences fault
    if gpa == Layout.SHARED_PAGE:
        return _RW_DATA
    return _RO_DATA  # boot info, GDT, page tables: read-only


def write_boot_info(
    memory: GuestMemory,
    *,
    cmdline: bytes,
    nr_vcpus: int,
    tsc_khz: int,
    tsc_now: int,
    channels: Iterable[Channel],
    features: abi.Feature,
) -> None:
    """Write the command line and ``struct pvm_boot_info`` at their fixed addresses.

    *tsc_now* is the guest TSC read just before: with the monotonic time taken
    here it lets the guest read the time without a hypercall.
    """
    memory.write(Layout.CMDLINE, cmdline + b"\0")
    info = abi.BootInfo(
        magic=abi.BOOT_INFO_MAGIC,
        abi_version=abi.ABI_VERSION,
        features=int(BASE_FEATURES | features),
        mem_size=memory.size,
        cmdline=Layout.CMDLINE,
        cmdline_len=len(cmdline),
        nr_vcpus=nr_vcpus,
        tsc_khz=tsc_khz,
        shared_page=Layout.SHARED_PAGE,
        reserved_end=Layout.RESERVED_END,
        hypercall_port=abi.HYPERCALL_PORT,
        upcall_vector=abi.UPCALL_VECTOR,
        nr_ports=abi.NR_PORTS,
        ext_base=abi.EXT_BASE,
        ext_count=abi.EXT_COUNT,
    )
    info.tsc_at_boot = tsc_now
    info.monotonic_at_boot = time.monotonic_ns()
    info.clone_seed = int.from_bytes(os.urandom(8), "little")  # clone_id stays 0: this VM booted
    n = 0
    for handle, device in enumerate(channels):
        entry = info.channels[handle]
        entry.handle = handle
        entry.kind = int(device.kind)
        entry.name = device.name.encode()[: abi.CHANNEL_NAME_LEN - 1]
        n += 1
    info.nr_channels = n
    memory.write_obj(Layout.BOOT_INFO, info)


def announce_extensions(memory: GuestMemory, registered: int) -> None:
    """Set ``ext_registered`` (bit i: extension ``EXT_BASE + i`` has a handler); before the boot vCPU runs."""
    memory.write_u64(Layout.BOOT_INFO + abi.BootInfo.ext_registered.offset, registered)
