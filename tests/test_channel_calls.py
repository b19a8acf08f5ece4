"""Every channel call against every device kind (console, block, stream, null sink).

SEND, RECV, CHANNEL_INFO, CHANNEL_FLUSH and EVENT_BIND(CHANNEL) on each kind must give
a valid result or a documented errno, never an exception out of the dispatcher. The
null-sink one is a regression test: NullSink had no readiness(), so CHANNEL_INFO on it
stopped the VM as a pyvmm internal error.
"""

from __future__ import annotations

import os

import pytest

from pyvmm.machine import Machine, MachineConfig
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, ChannelStat, Errno, EventKind, Hypercall

from .support import services_vm

BUF = 0x300000
INFO = 0x310000
U64 = (1 << 64) - 1
KINDS = ["console", "block", "stream", "null_sink"]


def _call(vm, nr, *args) -> int:
    result = vm.dispatcher.dispatch(vm.vcpus[0], nr, *args, *[0] * (5 - len(args)))
    return result - (1 << 64) if result >> 63 else result


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    vm = services_vm.build(str(tmp_path_factory.mktemp("calls")))
    yield vm
    vm.close()


#: What each kind answers: (SEND 8 bytes, RECV 8 bytes, kind, readiness bits that must be set, EVENT_BIND).
EXPECTED = {
    "console": (8, 0, ChannelKind.CONSOLE, ChannelFlag.WRITABLE, "port"),
    "block": (8, 8, ChannelKind.BLOCK, ChannelFlag.READABLE | ChannelFlag.WRITABLE, "port"),
    "stream": (-Errno.EAGAIN, -Errno.EAGAIN, ChannelKind.STREAM, ChannelFlag(0), "port"),  # no peer yet
    "null_sink": (8, 0, ChannelKind.NULL_SINK, ChannelFlag.READABLE | ChannelFlag.WRITABLE, -Errno.EINVAL),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_channel_call_on_every_device_kind(vm, kind):
    handle = vm.handles[kind]
    sent, received, ckind, ready, bound = EXPECTED[kind]
    vm.memory.write(BUF, b"abcdefgh")
    assert _call(vm, Hypercall.SEND, handle, BUF, 8, 0) == sent
    assert _call(vm, Hypercall.RECV, handle, BUF, 8, 0) == received
    assert _call(vm, Hypercall.CHANNEL_INFO, handle, INFO) == 0
    stat = vm.memory.read_obj(INFO, ChannelStat)
    assert stat.kind == ckind
    assert ChannelFlag(stat.flags) & ready == ready
    assert _call(vm, Hypercall.CHANNEL_FLUSH, handle) == 0
    port = _call(vm, Hypercall.EVENT_BIND, EventKind.CHANNEL, handle, 0)
    if bound == "port":
        assert port > 0
        assert _call(vm, Hypercall.EVENT_BIND, EventKind.CHANNEL, handle, 0) == -Errno.EBUSY
        assert _call(vm, Hypercall.EVENT_CLOSE, port) == 0
    else:
        assert port == bound


@pytest.mark.parametrize("kind", KINDS)
def test_bad_pointers_on_every_device_kind(vm, kind):
    handle = vm.handles[kind]
    size = vm.memory.size
    assert _call(vm, Hypercall.SEND, handle, size - 4, 8, 0) == -Errno.EFAULT
    assert _call(vm, Hypercall.RECV, handle, 0x1000, 8, 0) in (-Errno.EFAULT,)  # boot info: VMM-owned
    assert _call(vm, Hypercall.CHANNEL_INFO, handle, U64 - 8) == -Errno.EFAULT
    assert _call(vm, Hypercall.CHANNEL_INFO, handle, 0x1000) == -Errno.EFAULT


@pytest.mark.kvm
def test_channel_info_on_the_null_sink_of_a_real_machine(guest_kernel):
    """The regression test through the Machine and its dispatcher (the same API before and after)."""
    null_out = os.open(os.devnull, os.O_WRONLY)
    try:
        with Machine(MachineConfig(kernel=guest_kernel, memory=16 << 20, console_fd=null_out, null_sink=True)) as m:
            handle = 1  # the console is 0; the null sink comes after it
            result = m.dispatcher.dispatch(m.vcpus[0], Hypercall.CHANNEL_INFO, handle, INFO, 0, 0, 0)
            assert result == 0
            stat = ChannelStat.from_buffer_copy(m.memory.read(INFO, 16))
            assert stat.kind == ChannelKind.NULL_SINK
            assert stat.flags & ChannelFlag.WRITABLE
    finally:
        os.close(null_out)
