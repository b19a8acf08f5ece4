"""The block and stream channel backends on real host files and Unix sockets (no KVM needed:
the guest's memory is stood in for by a bytearray, which is what the handlers hand them)."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time

import pytest

from pyvmm.devices.base import ChannelError, DeviceError
from pyvmm.devices.block import BlockDevice
from pyvmm.devices.stream import StreamChannel
from pyvmm.paravirt.abi import ChannelFlag, Errno


def _errno(fn, *args) -> Errno:
    with pytest.raises(ChannelError) as e:
        fn(*args)
    return e.value.errno


# -- block -----------------------------------------------------------------------------------
@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 8192)
    dev = BlockDevice.open("disk0", str(path))
    yield dev, path
    dev.close()


def test_block_write_read_at_offsets(disk):
    dev, path = disk
    assert dev.size == 8192
    assert dev.send(memoryview(b"hello"), 100) == 5
    buf = bytearray(7)
    assert dev.recv(memoryview(buf), 99) == 7
    assert buf == b"\0hello\0"
    dev.flush()
    assert path.read_bytes()[100:105] == b"hello"


def test_block_end_of_disk(disk):
    dev, path = disk
    assert dev.send(memoryview(b"x" * 100), 8192 - 30) == 30  # crosses the end: partial
    assert _errno(dev.send, memoryview(b"x"), 8192) == Errno.ENOSPC
    assert _errno(dev.send, memoryview(b"x"), 1 << 63) == Errno.ENOSPC
    assert dev.send(memoryview(b""), 8192) == 0
    buf = bytearray(100)
    assert dev.recv(memoryview(buf), 8192 - 30) == 30
    assert buf[:30] == b"x" * 30 and buf[30:] == bytes(70)
    assert dev.recv(memoryview(buf), 8192) == 0
    assert dev.recv(memoryview(buf), (1 << 64) - 1) == 0
    assert os.path.getsize(path) == 8192  # the size never changes
    assert dev.readiness() == ChannelFlag.READABLE | ChannelFlag.WRITABLE | ChannelFlag.CONNECTED


def test_block_recv_fills_the_callers_buffer_in_place(disk):
    dev, _ = disk
    dev.send(memoryview(bytes(range(256)) * 4), 0)
    backing = bytearray(2048)
    view = memoryview(backing)[512:1536]
    assert dev.recv(view, 0) == 1024
    assert backing[512:1536] == bytes(range(256)) * 4 and backing[:512] == bytes(512)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p / "missing.img", "no such file"),
        (lambda p: p, "is a directory"),
    ],
)
def test_block_open_errors(tmp_path, make, fragment):
    with pytest.raises(DeviceError, match=fragment):
        BlockDevice.open("disk0", str(make(tmp_path)))


def unwritable_file(tmp_path) -> str:
    """A file this process may read but not open for writing (root ignores mode bits: use sysfs)."""
    if os.geteuid() != 0:
        path = tmp_path / "ro.img"
        path.write_bytes(bytes(4096))
        path.chmod(0o444)
        return str(path)
    for candidate in ("/sys/kernel/notes", "/sys/kernel/vmcoreinfo"):
        if os.access(candidate, os.R_OK):
            try:
                os.close(os.open(candidate, os.O_RDWR))
            except PermissionError:
                return candidate
    pytest.skip("no file here that this user cannot open for writing")


def test_block_unwritable_file(tmp_path):
    with pytest.raises(DeviceError, match="cannot open for reading and writing"):
        BlockDevice.open("disk0", unwritable_file(tmp_path))


def test_block_locked_against_a_second_vm(disk):
    _, path = disk
    with pytest.raises(DeviceError, match="in use by another VM"):
        BlockDevice.open("disk0", str(path))


# -- stream ----------------------------------------------------------------------------------
def _wait_for(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def pair(tmp_path):
    path = str(tmp_path / "link.sock")
    server = StreamChannel.open("link", path, server=True)
    client = StreamChannel.open("link", path, server=False)
    yield server, client, path
    client.close()
    server.close()


def _connected(*channels):
    return _wait_for(lambda: all(c.readiness() & ChannelFlag.CONNECTED for c in channels))


def test_stream_message_both_ways(pair):
    server, client, _ = pair
    assert _connected(server, client)
    assert client.send(memoryview(b"ping"), 0) == 4
    buf = bytearray(16)
    assert _wait_for(lambda: server.readiness() & ChannelFlag.READABLE)
    assert server.recv(memoryview(buf), 0) == 4 and buf[:4] == b"ping"
    assert _errno(server.recv, memoryview(buf), 0) == Errno.EAGAIN
    assert server.send(memoryview(b"pong!"), 0) == 5
    assert _wait_for(lambda: client.readiness() & ChannelFlag.READABLE)
    assert client.recv(memoryview(buf), 0) == 5 and buf[:5] == b"pong!"


def test_stream_eagain_before_a_peer(tmp_path):
    path = str(tmp_path / "nobody.sock")
    client = StreamChannel.open("link", path, server=False)
    try:
        assert _errno(client.send, memoryview(b"x"), 0) == Errno.EAGAIN
        assert _errno(client.recv, memoryview(bytearray(4)), 0) == Errno.EAGAIN
        assert client.readiness() == 0
        # The listener may come later: the client keeps trying and connects.
        server = StreamChannel.open("link", path, server=True)
        try:
            assert _connected(server, client)
        finally:
            server.close()
    finally:
        client.close()


def test_stream_offsets_are_invalid(pair):
    server, _, _ = pair
    assert _errno(server.send, memoryview(b"x"), 1) == Errno.EINVAL
    assert _errno(server.recv, memoryview(bytearray(1)), 1) == Errno.EINVAL


def test_stream_on_ready_fires_on_connect_and_data(pair):
    server, client, _ = pair
    fired = threading.Event()
    server.on_ready = fired.set
    assert _connected(server, client)
    fired.clear()
    buf = bytearray(8)
    assert _errno(server.recv, memoryview(buf), 0) == Errno.EAGAIN  # arms the read edge
    client.send(memoryview(b"data"), 0)
    assert fired.wait(5), "no readiness callback when data arrived"
    assert server.recv(memoryview(buf), 0) == 4


def test_stream_bulk_send_is_partial_not_blocking(pair):
    server, client, _ = pair
    assert _connected(server, client)
    big = bytes(range(256)) * (16 << 12)  # 16 MiB: more than any socket buffer holds
    sent = client.send(memoryview(big), 0)
    assert 0 < sent <= len(big)
    while sent < len(big):  # fill the buffer until it is full: then -EAGAIN, not a hang
        try:
            sent += client.send(memoryview(big)[sent:], 0)
        except ChannelError as e:
            assert e.errno == Errno.EAGAIN
            break
    assert sent < len(big)
    assert not client.readiness() & ChannelFlag.WRITABLE
    got = bytearray()
    buf = bytearray(1 << 20)
    while len(got) < sent:
        got += buf[: server.recv(memoryview(buf), 0)]
    assert got == big[:sent]


def test_stream_peer_gone_drains_then_resets(pair):
    server, client, _ = pair
    assert _connected(server, client)
    client.send(memoryview(b"last words"), 0)
    client.close()
    buf = bytearray(64)
    assert _wait_for(lambda: server.readiness() & ChannelFlag.CLOSED)
    assert server.recv(memoryview(buf), 0) == 10 and buf[:10] == b"last words"
    assert _errno(server.recv, memoryview(buf), 0) == Errno.ECONNRESET
    assert _errno(server.send, memoryview(b"x"), 0) == Errno.EPIPE
    assert _errno(server.send, memoryview(b"x" * (2 << 20)), 0) == Errno.EPIPE


def test_stream_server_removes_only_its_own_socket(tmp_path):
    path = tmp_path / "s.sock"
    server = StreamChannel.open("link", str(path), server=True)
    assert path.exists()
    server.close()
    assert not path.exists()
    # A socket file that replaced ours while the channel was open is not ours: it stays.
    server = StreamChannel.open("link", str(path), server=True)
    path.unlink()
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    other.close()
    server.close()
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_stream_server_replaces_a_stale_socket(tmp_path):
    """A socket file nobody listens on (left by a pyvmm that was SIGKILLed) does not block the next."""
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    server = StreamChannel.open("link", str(path), server=True)
    try:  # the file now there is a listening socket (the inode number may be the old one's, reused)
        client = StreamChannel.open("link", str(path), server=False)
        try:
            assert _connected(server, client)
        finally:
            client.close()
    finally:
        server.close()
    assert not path.exists()


def test_stream_server_leaves_a_file_that_is_not_a_socket(tmp_path):
    path = tmp_path / "s.sock"
    path.write_text("precious")
    with pytest.raises(DeviceError, match="already exists and is not a socket"):
        StreamChannel.open("link", str(path), server=True)
    assert path.read_text() == "precious"


def test_stream_server_path_in_use(tmp_path):
    path = str(tmp_path / "s.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen(1)
    try:
        with pytest.raises(DeviceError, match="in use by another listening VM"):
            StreamChannel.open("link", path, server=True)
    finally:
        live.close()


def test_stream_client_bad_directory(tmp_path):
    with pytest.raises(DeviceError, match="is not a directory"):
        StreamChannel.open("link", str(tmp_path / "no" / "s.sock"), server=False)
