"""SNAPSHOT (ABI 1.2): the guest asks to be snapshotted here, like fork: 0 in the original,
the clone id in a restored copy (which also finds it in ``pvm_boot_info.clone_id``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Errno, Hypercall
from pyvmm.paravirt.dispatcher import Dispatcher, HypercallError

if TYPE_CHECKING:
    from pyvmm.paravirt.services import Snapshots


def install(dispatcher: Dispatcher, snapshots: Snapshots | None) -> None:
    def snapshot(vcpu, a0, a1, a2, a3, a4) -> int:
        if snapshots is None:
            raise HypercallError(Errno.ENOSYS, "no snapshot support")
        return snapshots.guest_snapshot(vcpu)

    dispatcher.register_all({Hypercall.SNAPSHOT: snapshot})
