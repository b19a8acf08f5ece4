"""A host directory share (``--share HOSTDIR[:ro|:rw]``, ABI 1.2): the channel CHANNEL_OPEN opens files on.

Paths resolve beneath the share's root and nowhere else: every open is one
``openat2(root_fd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)``, so the
kernel itself refuses ``..`` that climbs out, absolute symbolic links and links that
point out (``-EXDEV``), and ``/proc`` magic links; a leading ``/`` means the share's
root. The root is opened (``O_PATH``) when the VM is built, before the seccomp filter,
which then lets ``openat2`` through only with that fd as its directory
(:data:`pyvmm.sandbox.share_rules`): after setup pyvmm can open nothing else, even if
the guest took it over. Read-only unless ``:rw``: a write, create or truncate gets
``-EROFS``. Only regular files, directories and (with ``O_PATH``) symbolic links can be
opened; anything else (a FIFO, a device node, a socket) is ``-EACCES`` (opened
``O_NONBLOCK`` so a FIFO cannot hold a vCPU).

What an open returns (each a :class:`~pyvmm.devices.base.Channel`): a
:class:`FileChannel` (``SEND``/``RECV`` at byte offsets), a :class:`DirChannel`
(``RECV`` at a byte offset returns whole ``linux_dirent64`` records of a listing taken
at open), or a :class:`PathChannel` (``O_PATH``: ``FILE_STAT`` only, and ``RECV`` of a
symbolic link's target).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from bisect import bisect_left, bisect_right

from pyvmm.devices.base import Channel, ChannelError, DeviceError
from pyvmm.paravirt.abi import ChannelFlag, ChannelKind, Errno, FileStat, OpenFlag

_SYS_OPENAT2 = 437  # x86-64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_PATH_MAX = 4096
_ALLOWED = int(
    OpenFlag.WRONLY
    | OpenFlag.RDWR
    | OpenFlag.CREAT
    | OpenFlag.EXCL
    | OpenFlag.TRUNC
    | OpenFlag.APPEND
    | OpenFlag.DIRECTORY
    | OpenFlag.NOFOLLOW
    | OpenFlag.CLOEXEC
    | OpenFlag.PATH
)
_WRITES = int(OpenFlag.WRONLY | OpenFlag.RDWR | OpenFlag.CREAT | OpenFlag.TRUNC | OpenFlag.APPEND)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _errno(e: int) -> Errno:
    try:
        return Errno(e)
    except ValueError:
        return Errno.EIO


def openat2_beneath(root_fd: int, path: bytes, flags: int, mode: int) -> int:
    """``openat2`` with ``RESOLVE_BENEATH``: an fd, or :class:`ChannelError` with the host's errno."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, ctypes.c_char_p(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        e = ctypes.get_errno()
        raise ChannelError(_errno(e), f"{path!r}: {os.strerror(e)}")
    return fd


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat(
        mode=st.st_mode,
        nlink=st.st_nlink,
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size,
        ino=st.st_ino,
        dev=st.st_dev,
        blocks=st.st_blocks,
        atime_ns=st.st_atime_ns,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        rdev=st.st_rdev,
    )


class _FdChannel(Channel):
    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name

    def stat(self) -> FileStat:
        return file_stat(os.fstat(self.fd))

    def readiness(self) -> ChannelFlag:
        return ChannelFlag.READABLE | ChannelFlag.WRITABLE | ChannelFlag.CONNECTED

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileChannel(_FdChannel):
    """A regular host file: ``RECV`` is ``preadv`` straight into guest RAM, ``SEND`` ``pwrite``."""

    kind = ChannelKind.FILE

    def __init__(self, fd: int, name: str, *, readable: bool = True, writable: bool = False) -> None:
        super().__init__(fd, name)
        self.readable = readable
        self.writable = writable

    @property
    def size(self) -> int:  # CHANNEL_INFO: the size now (the file may grow)
        return os.fstat(self.fd).st_size

    def recv(self, buf: memoryview, offset: int) -> int:
        if not self.readable:
            raise ChannelError(Errno.EBADF, f"{self.name} is not open for reading")
        return os.preadv(self.fd, [buf], offset)

    def send(self, data: memoryview, offset: int) -> int:
        if not self.writable:
            raise ChannelError(Errno.EBADF, f"{self.name} is not open for writing")
        return os.pwrite(self.fd, data, offset)


class DirChannel(_FdChannel):
    """A directory: its listing (``.`` and ``..`` first) as ``linux_dirent64`` records, taken at open.
    ``RECV(buf, offset)`` copies the whole records from byte *offset* that fit (``-EINVAL`` if not
    even one does, or *offset* is not a record's start); 0 past the end."""

    kind = ChannelKind.DIR

    def __init__(self, fd: int, name: str) -> None:
        super().__init__(fd, name)
        own = os.fstat(fd).st_ino
        entries = [(own, 4, b"."), (own, 4, b"..")]
        # d_type from getdents64 (no per-entry stat: the seccomp filter lets no path-taking stat
        # through); DT_UNKNOWN for the rare kinds, which a program then lstat()s itself.
        with os.scandir(fd) as it:
            for e in it:
                if e.is_symlink():
                    kind = 10
                elif e.is_dir(follow_symlinks=False):
                    kind = 4
                elif e.is_file(follow_symlinks=False):
                    kind = 8
                else:
                    kind = 0
                entries.append((e.inode(), kind, os.fsencode(e.name)))
        records, self.starts = [], []
        pos = 0
        for ino, kind, name in entries:
            reclen = (19 + len(name) + 1 + 7) & ~7
            self.starts.append(pos)
            pos += reclen
            records.append(struct.pack("<QqHB", ino, pos, reclen, kind) + name.ljust(reclen - 19, b"\0"))
        self.listing = b"".join(records)
        self.starts.append(pos)

    def recv(self, buf: memoryview, offset: int) -> int:
        if offset >= len(self.listing):
            return 0
        i = bisect_left(self.starts, offset)
        if self.starts[i] != offset:
            raise ChannelError(Errno.EINVAL, f"offset {offset} is not a directory entry's start")
        end = self.starts[bisect_right(self.starts, offset + len(buf)) - 1]
        if end <= offset:
            raise ChannelError(Errno.EINVAL, "buffer too small for the next entry")
        buf[: end - offset] = self.listing[offset:end]
        return end - offset


class PathChannel(_FdChannel):
    """An ``O_PATH`` handle: ``FILE_STAT``; ``RECV`` of a symbolic link's target (readlink)."""

    kind = ChannelKind.PATH

    def recv(self, buf: memoryview, offset: int) -> int:
        try:
            target = os.fsencode(os.readlink("", dir_fd=self.fd))
        except OSError as e:
            raise ChannelError(Errno.EINVAL if e.errno in (errno.ENOENT, errno.EINVAL) else _errno(e.errno)) from None
        chunk = target[offset : offset + len(buf)]
        buf[: len(chunk)] = chunk
        return len(chunk)


class Share(Channel):
    """The share itself: ``CHANNEL_OPEN`` resolves paths beneath :attr:`root_fd`."""

    kind = ChannelKind.SHARE
    name = "share"

    def __init__(self, path: str, *, writable: bool = False) -> None:
        try:
            self.root_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise DeviceError(f"--share {path}: {e.strerror}") from None
        self.path = path
        self.writable = writable

    def open(self, path: bytes, flags: int, mode: int) -> Channel:
        """Open *path* (absolute or relative: both from the share's root) with Linux *flags*.
        Raises :class:`ChannelError` (the host's errno, ``EROFS``, ``EINVAL``, ``EACCES``)."""
        if flags & ~_ALLOWED or mode & ~0o7777:
            raise ChannelError(Errno.EINVAL, f"open flags {flags:#o}")
        if len(path) >= _PATH_MAX:
            raise ChannelError(Errno.ENAMETOOLONG, "path too long")
        if b"\0" in path:
            raise ChannelError(Errno.EINVAL, "NUL in path")
        o_path = bool(flags & OpenFlag.PATH)
        if o_path:
            flags &= int(OpenFlag.PATH | OpenFlag.DIRECTORY | OpenFlag.NOFOLLOW)
        elif flags & _WRITES and not self.writable:
            raise ChannelError(Errno.EROFS, "the share is read-only (--share DIR:rw to write)")
        rel = path.lstrip(b"/") or b"."
        host_flags = (flags & ~int(OpenFlag.CLOEXEC)) | (0 if o_path else os.O_NONBLOCK | os.O_NOCTTY)
        fd = openat2_beneath(self.root_fd, rel, host_flags, mode)
        try:
            st = os.fstat(fd)
            name = os.fsdecode(rel)[-23:]
            if o_path:
                return PathChannel(fd, name)
            if stat.S_ISDIR(st.st_mode):
                if flags & _WRITES:
                    raise ChannelError(Errno.EISDIR, "a directory")
                return DirChannel(fd, name)
            if not stat.S_ISREG(st.st_mode):
                raise ChannelError(Errno.EACCES, "only regular files and directories can be opened")
            os.set_blocking(fd, True)
            access = flags & 3
            return FileChannel(fd, name, readable=access != os.O_WRONLY, writable=access != os.O_RDONLY)
        except BaseException:
            os.close(fd)
            raise

    def stat(self) -> FileStat:
        return file_stat(os.fstat(self.root_fd))

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1


def parse_share(spec: str) -> tuple[str, bool]:
    """``HOSTDIR[:ro|:rw]`` -> (path, writable). Raises ``ValueError``."""
    path, writable = spec, False
    for suffix, w in ((":ro", False), (":rw", True)):
        if spec.endswith(suffix):
            path, writable = spec[: -len(suffix)], w
    if not path:
        raise ValueError("--share needs a directory")
    if not os.path.isdir(path):
        raise ValueError(f"--share {path}: not a directory")
    return path, writable
