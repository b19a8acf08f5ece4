"""The console's bounded output buffer against a real pipe (no KVM): back-pressure, flush, close."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pyvmm.devices.base import ChannelError
from pyvmm.devices.console import Console
from pyvmm.devices.outbuf import OutputBuffer
from pyvmm.paravirt.abi import ChannelFlag, Errno


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def _fill(out: OutputBuffer) -> int:
    """Offer until nothing fits (the writer fills the pipe meanwhile); total accepted."""
    total, data = 0, memoryview(b"x" * 65536)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = out.offer(data)
        total += n
        if n == 0 and out.pending == out.capacity:
            return total
        time.sleep(0.001)
    raise AssertionError("the buffer never filled")


def test_offer_is_partial_then_zero_when_nobody_reads(pipe):
    _, w = pipe
    out = OutputBuffer(w, capacity=128 << 10)
    out.start()
    _fill(out)
    assert out.offer(memoryview(b"more")) == 0  # full: the console turns this into -EAGAIN
    assert not out.has_space()
    assert not out.wait_drained(0.2)  # CHANNEL_FLUSH's bounded wait
    assert out.close(stall=0.2) is False  # gives up: the reader never read


def test_room_after_the_reader_reads_raises_on_space(pipe):
    r, w = pipe
    woken = threading.Event()
    out = OutputBuffer(w, capacity=128 << 10, on_space=woken.set)
    out.start()
    total = _fill(out)
    got = 0
    while got < total:  # the reader catches up: everything arrives, in order, and room appears
        got += len(os.read(r, 1 << 20))
    assert woken.wait(5)
    assert out.has_space()
    assert out.close() is True


def test_reader_gone_is_epipe_for_the_guest(pipe):
    r, w = pipe
    os.close(r)
    null = os.open(os.devnull, os.O_RDONLY)
    console = Console(out_fd=w, in_fd=null)
    try:
        console.send(memoryview(b"hello"), 0)  # accepted; the writer then meets EPIPE
        deadline = time.monotonic() + 5
        while True:
            try:
                console.send(memoryview(b"again"), 0)
            except ChannelError as e:
                assert e.errno == Errno.EPIPE
                break
            assert time.monotonic() < deadline, "the write error never reached SEND"
            time.sleep(0.01)
    finally:
        console.close()
        os.close(null)


def test_console_readiness_drops_writable_when_full(pipe):
    r, w = pipe
    console = Console(out_fd=w, in_fd=r)
    try:
        assert console.readiness() & ChannelFlag.WRITABLE
        _fill(console._out)
        assert not console.readiness() & ChannelFlag.WRITABLE
        with pytest.raises(ChannelError) as e:
            console.send(memoryview(b"x"), 0)
        assert e.value.errno == Errno.EAGAIN
        with pytest.raises(ChannelError) as e:
            console.flush()
        assert e.value.errno == Errno.EAGAIN
    finally:
        console._out.close(stall=0.1)
        console.close()
