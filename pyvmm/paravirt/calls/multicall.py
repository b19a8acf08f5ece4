"""MULTICALL: a batch of hypercalls in one exit, each with its own result."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import MULTICALL_MAX, Errno, Hypercall, MulticallEntry, errno_result
from pyvmm.paravirt.calls.channels import check_guest_writable
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.memory import GuestMemory

_ENTRY = ctypes.sizeof(MulticallEntry)
_NESTED = errno_result(Errno.EINVAL)
_RESULT_OFFSET = MulticallEntry.result.offset
_NOT_IN_BATCH = (Hypercall.MULTICALL, Hypercall.SNAPSHOT)


def install(dispatcher: Dispatcher, memory: GuestMemory) -> None:
    mem = memory

    def multicall(vcpu, entries, count, a2, a3, a4) -> int:
        """Run *count* entries in order; each one's result lands in its ``result``.

        Returns the number of entries run (all of them, unless the guest shut
        down inside the batch). A nested MULTICALL entry gets ``-EINVAL``, as does a
        SNAPSHOT one (a snapshot is taken between exits, and this exit is not over).
        """
        if count > MULTICALL_MAX:
            raise HypercallError(Errno.E2BIG, f"more than {MULTICALL_MAX} entries")
        mem.check(entries, count * _ENTRY)  # the whole array, once
        # pyvmm writes each result back: not into pages the guest may not write itself.
        check_guest_writable(mem, entries, count * _ENTRY)
        batch = mem.read_obj(entries, MulticallEntry * count)
        dispatch = dispatcher.dispatch
        for i, entry in enumerate(batch):
            nr = entry.nr
            a = entry.args
            result = _NESTED if nr in _NOT_IN_BATCH else dispatch(vcpu, nr, a[0], a[1], a[2], a[3], a[4])
            # Only the result field is written back: a call in the batch may have written the array.
            mem.write_u64(entries + i * _ENTRY + _RESULT_OFFSET, result)
        return count

    dispatcher.register_all({Hypercall.MULTICALL: multicall})
