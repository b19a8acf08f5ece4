"""USER_SEND and USER_RECV (ABI 1.2): SEND/RECV whose buffer is a user virtual address.

``(handle, va, len, offset, space)``: the VMM walks space *space*'s tables, checks each
page as a CPL3 access of that kind (RECV writes), serves faults as the MMU would
(demand-zero, copy-on-write), and moves the data between the channel and those frames
with no copy in the guest: a guest kernel serving ``read(2)``/``write(2)`` needs one
hypercall and never touches the bytes (under a CPU emulator that is the difference
between microseconds and 80 ms per MiB). A range that starts outside the user window
or on a page the program could not access is ``-EFAULT``; one that becomes inaccessible
part-way is a partial transfer, as ``read(2)`` reports one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.devices.base import ChannelError
from pyvmm.paravirt.abi import ChannelKind, Errno, Hypercall
from pyvmm.paravirt.calls.channels import MAX_TRANSFER
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.devices.base import ChannelTable
    from pyvmm.memory import GuestMemory
    from pyvmm.paravirt.address_spaces import AddressSpaceManager

#: Kinds addressed by byte offset: the offset advances run by run.
_ADDRESSED = frozenset({ChannelKind.BLOCK, ChannelKind.FILE, ChannelKind.PATH})


def install(dispatcher: Dispatcher, memory: GuestMemory, channels: ChannelTable, spaces: AddressSpaceManager) -> None:
    mem = memory

    def transfer(vcpu, handle: int, va: int, length: int, offset: int, space: int, *, write: bool) -> int:
        device = channels.get(handle)
        length = min(length, MAX_TRANSFER)
        if length == 0:
            return 0
        runs = spaces.user_runs(vcpu, space, va, length, write=write)
        if not runs:
            raise HypercallError(Errno.EFAULT, f"{va:#x}: not accessible in space {space}")
        if device.kind is ChannelKind.DIR and write:
            return _bounced(mem, device, runs, offset)
        op = device.recv if write else device.send
        addressed = device.kind in _ADDRESSED
        done = 0
        for gpa, n in runs:
            view = mem.view(gpa, n)
            try:
                r = op(view, offset + done if addressed else offset)
            except ChannelError:
                if done:
                    return done  # what moved before -EAGAIN (or an error) is the result
                raise
            except OSError as e:
                if done:
                    return done
                raise HypercallError(Errno.EIO, str(e)) from None
            finally:
                view.release()
            done += r
            if r < n:
                break  # short: the next run would not continue where this one stopped
        return done

    def send(vcpu, handle, va, length, offset, space) -> int:
        return transfer(vcpu, handle, va, length, offset, space, write=False)

    def recv(vcpu, handle, va, length, offset, space) -> int:
        return transfer(vcpu, handle, va, length, offset, space, write=True)

    dispatcher.register_all({Hypercall.USER_SEND: send, Hypercall.USER_RECV: recv})


def _bounced(mem: GuestMemory, device, runs: list[tuple[int, int]], offset: int) -> int:
    """A directory's records must not be split at a page boundary: fill a host buffer, then scatter."""
    buf = bytearray(sum(n for _, n in runs))
    got = device.recv(memoryview(buf), offset)
    pos = 0
    for gpa, n in runs:
        if pos >= got:
            break
        take = min(n, got - pos)
        mem.write(gpa, bytes(buf[pos : pos + take]))
        pos += take
    return got
