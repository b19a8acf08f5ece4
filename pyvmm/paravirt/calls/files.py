"""CHANNEL_OPEN, CHANNEL_CLOSE and FILE_STAT (ABI 1.2): files on a host directory share.

The share device (:class:`~pyvmm.devices.share.Share`) resolves the path; this module
reads the guest's path through the checked accessor, hands the opened device a handle
in the channel table, and writes ``struct pvm_file_stat`` where the guest may be written.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import ChannelKind, Errno, FileStat, Hypercall
from pyvmm.paravirt.calls.channels import check_guest_writable
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.devices.base import ChannelTable
    from pyvmm.memory import GuestMemory

PATH_MAX = 4096
_STAT_SIZE = ctypes.sizeof(FileStat)


def install(dispatcher: Dispatcher, memory: GuestMemory, channels: ChannelTable) -> None:
    mem = memory

    def open_(vcpu, share_handle, path, path_len, flags, mode) -> int:
        share = channels.get(share_handle)
        if share.kind is not ChannelKind.SHARE:
            raise HypercallError(Errno.EINVAL, f"channel {share_handle} is not a share")
        if path_len >= PATH_MAX:
            raise HypercallError(Errno.ENAMETOOLONG, "path longer than PATH_MAX")
        name = mem.read(path, path_len)  # GuestMemoryError -> -EFAULT
        device = share.open(name, flags, mode)  # ChannelError -> its errno
        return channels.open(device)

    def close(vcpu, handle, a1, a2, a3, a4) -> int:
        channels.close_opened(handle)
        return 0

    def stat(vcpu, handle, stat_gpa, a2, a3, a4) -> int:
        device = channels.get(handle)
        mem.check(stat_gpa, _STAT_SIZE)
        check_guest_writable(mem, stat_gpa, _STAT_SIZE)
        try:
            st = device.stat()
        except OSError as e:
            raise HypercallError(Errno.EIO, str(e)) from None
        mem.write_obj(stat_gpa, st)
        return 0

    dispatcher.register_all({Hypercall.CHANNEL_OPEN: open_, Hypercall.CHANNEL_CLOSE: close, Hypercall.FILE_STAT: stat})
