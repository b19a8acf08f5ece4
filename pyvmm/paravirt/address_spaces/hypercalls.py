"""The address-space hypercalls (32-42), each a thin call into the manager."""

from __future__ import annotations

from pyvmm.paravirt.abi import Hypercall
from pyvmm.paravirt.address_spaces.manager import AddressSpaceManager
from pyvmm.paravirt.dispatcher import Dispatcher


def install_address_spaces(dispatcher: Dispatcher, manager: AddressSpaceManager) -> None:
    """Register hypercalls 32-42 against *manager*."""
    m = manager

    def create(ctx, flags, a1, a2, a3, a4) -> int:
        return m.as_create(ctx, flags)

    def destroy(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_destroy(ctx, handle)

    def map_(ctx, handle, va, gpa, length, prot) -> int:
        return m.as_call(ctx, m.leaves.map, handle, va, gpa, length, prot)

    def unmap(ctx, handle, va, length, a3, a4) -> int:
        return m.as_call(ctx, m.leaves.unmap, handle, va, length)

    def protect(ctx, handle, va, length, prot, a4) -> int:
        return m.as_call(ctx, m.leaves.protect, handle, va, length, prot)

    def lazy(ctx, handle, va, length, prot, a4) -> int:
        return m.as_call(ctx, m.leaves.lazy, handle, va, length, prot)

    def switch(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_switch(ctx, handle)

    def clone(ctx, handle, a1, a2, a3, a4) -> int:
        return m.as_clone(ctx, handle)

    def batch(ctx, handle, ops_gpa, count, a3, a4) -> int:
        return m.as_batch(ctx, handle, ops_gpa, count)

    def fault(ctx, handle, va, err, rip, a4) -> int:
        return m.page_fault(ctx, handle, va, err, rip)

    def donate(ctx, gpa, length, a2, a3, a4) -> int:
        return m.as_donate(ctx, gpa, length)

    dispatcher.register(Hypercall.AS_CREATE, create)
    dispatcher.register(Hypercall.AS_DESTROY, destroy)
    dispatcher.register(Hypercall.AS_MAP, map_)
    dispatcher.register(Hypercall.AS_UNMAP, unmap)
    dispatcher.register(Hypercall.AS_PROTECT, protect)
    dispatcher.register(Hypercall.AS_SWITCH, switch)
    dispatcher.register(Hypercall.AS_CLONE, clone)
    dispatcher.register(Hypercall.AS_MAP_BATCH, batch)
    dispatcher.register(Hypercall.AS_LAZY, lazy)
    dispatcher.register(Hypercall.PAGE_FAULT, fault)
    dispatcher.register(Hypercall.AS_DONATE, donate)
