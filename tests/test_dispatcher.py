"""Dispatcher registration: one handler per number, with the ABI's arity (pure logic)."""

from __future__ import annotations

import pytest

from pyvmm.paravirt.abi import Errno, Hypercall, errno_result
from pyvmm.paravirt.dispatcher import Dispatcher


def _ok(vcpu, handle, buf, length, offset, a4) -> int:
    return 7


def test_a_second_handler_for_a_number_is_refused():
    d = Dispatcher()
    d.register(Hypercall.SEND, _ok)
    with pytest.raises(ValueError, match="registered twice"):
        d.register(Hypercall.SEND, _ok)
    assert d.dispatch(None, Hypercall.SEND, 0, 0, 0, 0, 0) == 7


def test_a_handler_using_an_argument_the_abi_lacks_is_refused():
    def notify(vcpu, port, extra, a2, a3, a4) -> int:  # NOTIFY has one argument
        return 0

    with pytest.raises(ValueError, match="must not use a1"):
        Dispatcher().register(Hypercall.NOTIFY, notify)
    with pytest.raises(ValueError, match="parameters"):
        Dispatcher().register(Hypercall.NULL, lambda vcpu: 0)


def test_numbers_outside_the_table():
    d = Dispatcher()
    with pytest.raises(ValueError, match="outside the ABI"):
        d.register(64, _ok)
    assert d.dispatch(None, 1 << 40, 0, 0, 0, 0, 0) == errno_result(Errno.ENOSYS)
    assert d.dispatch(None, 20, 0, 0, 0, 0, 0) == errno_result(Errno.ENOSYS)
