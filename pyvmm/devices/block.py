"""A block channel: a host file of fixed size, read and written at byte offsets.

``SEND(handle, buf, len, offset)`` is one ``pwrite`` straight from the guest's
memory (the only copy is the kernel's into the page cache), ``RECV`` one
``preadv`` straight into it; ``CHANNEL_FLUSH`` is ``fsync``. The size is the
file's size when the VM starts and never changes: a write at or past the end
is ``-ENOSPC``, one that crosses it is partial; a read at or past the end is 0.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable

from pyvmm.devices.base import Channel, ChannelError, DeviceError
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno

_READY = int(ChannelFlag.READABLE | ChannelFlag.WRITABLE | ChannelFlag.CONNECTED)
# Host failures the guest can act on keep their meaning; anything else is an I/O error.
_HOST_ERRNO = {errno.ENOSPC: Errno.ENOSPC, errno.EDQUOT: Errno.ENOSPC, errno.EFBIG: Errno.ENOSPC}


def _host_error(e: OSError) -> ChannelError:
    return ChannelError(_HOST_ERRNO.get(e.errno, Errno.EIO), str(e))


def fd_sha256(fd: int, size: int) -> str:
    """SHA-256 of the first *size* bytes of *fd*, read with ``pread`` (no file offset moves)."""
    import hashlib

    h = hashlib.sha256()
    off = 0
    while off < size:
        chunk = os.pread(fd, min(1 << 20, size - off), off)
        if not chunk:
            break
        h.update(chunk)
        off += len(chunk)
    return h.hexdigest()


class BlockDevice(Channel):
    kind = ChannelKind.BLOCK
    has_readiness_events = True

    def __init__(self, name: str, fd: int, size: int, path: str) -> None:
        self.name = name
        self.fd = fd
        self.size = size
        self.path = path
        #: Called when readiness may have changed; a block channel is always ready, so never.
        self.on_ready: Callable[[], None] | None = None

    @classmethod
    def open(cls, name: str, path: str) -> BlockDevice:
        """Open *path* read-write, locked against a second VM; raises :class:`DeviceError`."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except IsADirectoryError:
            raise DeviceError(f"--disk {path}: is a directory") from None
        except FileNotFoundError:
            raise DeviceError(f"--disk {path}: no such file (create it with the size you want)") from None
        except OSError as e:
            raise DeviceError(f"--disk {path}: cannot open for reading and writing: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise DeviceError(f"--disk {path}: not a regular file or block device")
            try:
                # Two VMs writing one disk would corrupt it, as with QEMU's image locking.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeviceError(f"--disk {path}: in use by another VM") from None
            size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
            if size == 0:
                # Also what /proc files (/proc/self/mem...) look like: a disk of nothing is a mistake.
                raise DeviceError(
                    f"--disk {path}: is empty (0 bytes); a disk's size is its file's: "
                    "create it with one (e.g. truncate -s 64M FILE)"
                )
        except BaseException:
            os.close(fd)
            raise
        return cls(name, fd, size, path)

    def send(self, data: memoryview, offset: int) -> int:
        """Write *data* at *offset*; partial where it crosses the end."""
        n = len(data)
        if n == 0:
            return 0
        if offset >= self.size:
            raise ChannelError(Errno.ENOSPC, f"write at {offset} past the end of {self.name}")
        n = min(n, self.size - offset)
        done = 0
        while done < n:
            try:
                written = os.pwrite(self.fd, data[done:n], offset + done)
            except OSError as e:
                if done:
                    break
                raise _host_error(e) from None
            if written <= 0:
                break
            done += written
        return done

    def recv(self, buf: memoryview, offset: int) -> int:
        """Read into *buf* from *offset*; 0 at or past the end, partial where it crosses it."""
        if offset >= self.size:
            return 0
        n = min(len(buf), self.size - offset)
        done = 0
        while done < n:
            try:
                got = os.preadv(self.fd, [buf[done:n]], offset + done)
            except OSError as e:
                if done:
                    break
                raise _host_error(e) from None
            if got <= 0:  # the file shrank under us: report what we have
                break
            done += got
        return done

    def flush(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise _host_error(e) from None

    def content_hash(self) -> str:
        """SHA-256 of the disk's contents (a snapshot records it; restore compares)."""
        return fd_sha256(self.fd, self.size)

    def readiness(self) -> int:
        return _READY

    def close(self) -> None:
        """Make what was written durable (a SIGTERM'd run keeps its data), then close."""
        if self.fd < 0:
            return
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1
