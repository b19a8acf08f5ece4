"""A stream channel's socket file: listen on it, connect to it, remove it; nothing else.

These are the only operations on host paths a stream channel needs, gathered here
because in a contained pyvmm they run in the socket broker (:mod:`pyvmm.devices.broker`),
not in the VMM process, which may then make no path-based system call at all.

A socket file left by a dead pyvmm (SIGKILL, a power cut) does not block the next
run: when ``bind`` finds the path taken by a *socket* that nobody listens on (not
in ``/proc/net/unix`` as listening, and a probe ``connect`` is refused with
``ECONNREFUSED``), it is stale: it is unlinked and the bind tried once more. A live
listener is left alone (``in use by another listening VM``), and so is anything
that is not a socket (``already exists``): pyvmm removes only sockets nobody uses.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from pyvmm.devices.base import DeviceError

_SO_ACCEPTCON = 0x10000  # /proc/net/unix Flags bit of a listening socket
_STREAM = socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK

#: (st_dev, st_ino) of a socket file we created: what makes it ours to remove.
Identity = tuple[int, int]


def _listening(path: str) -> bool:
    """Whether a listening Unix socket is bound at *path* (asking the kernel, not connecting:
    a probe connection would be taken by that listener as its peer)."""
    wanted = {path, os.path.abspath(path)}
    try:
        with open("/proc/net/unix") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and int(fields[3], 16) & _SO_ACCEPTCON and fields[7] in wanted:
                    return True
    except (OSError, ValueError):
        pass
    return False


def _probe(path: str) -> int | None:
    """None if *path* is not a socket file; else the errno of a ``connect`` to it (0: accepted).

    Runs only after ``/proc/net/unix`` showed no listener there; a listener it does not
    list (another network namespace) sees the probe as a peer that left at once."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return None
    except FileNotFoundError:
        return errno.ENOENT  # gone meanwhile: bind again
    except OSError as e:
        return e.errno
    probe = socket.socket(socket.AF_UNIX, _STREAM)
    try:
        return probe.connect_ex(path)
    finally:
        probe.close()


def listen(name: str, path: str, *, label: str | None = None) -> tuple[socket.socket, Identity]:
    """Bind and listen at *path* (replacing a stale socket file); returns the socket and the
    identity of the file we made. Raises :class:`DeviceError` with the user's one line,
    which starts with *label* (default ``--channel NAME``)."""
    label = label or f"--channel {name}"
    in_use = DeviceError(f"{label}: {path} is in use by another listening VM")
    for attempt in (1, 2):
        sock = socket.socket(socket.AF_UNIX, _STREAM)
        try:
            sock.bind(path)
            sock.listen(1)
            st = os.stat(path)
            return sock, (st.st_dev, st.st_ino)
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE:
                raise DeviceError(f"{label}: cannot listen on {path}: {e.strerror}") from None
        if attempt == 2 or _listening(path):
            raise in_use
        err = _probe(path)
        if err is None:
            raise DeviceError(f"{label}: {path} already exists and is not a socket (pyvmm leaves it alone)")
        if err in (0, errno.EAGAIN):  # accepted, or a full backlog: somebody listens
            raise in_use
        if err == errno.ECONNREFUSED:  # a stale socket file (its pyvmm died): replace it
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # another pyvmm removed it first: bind again all the same
            except OSError as e:
                raise DeviceError(f"{label}: cannot remove the stale socket {path}: {e.strerror}") from None
        elif err != errno.ENOENT:
            raise DeviceError(f"{label}: {path} already exists ({os.strerror(err)})")
    raise AssertionError("unreachable")


def connect(path: str) -> socket.socket:
    """A connected, non-blocking stream socket to *path*. Raises ``OSError`` (``ENOENT``,
    ``ECONNREFUSED``, ``EAGAIN`` while the listener is not there or its backlog is full)."""
    sock = socket.socket(socket.AF_UNIX, _STREAM)
    err = sock.connect_ex(path)
    if err:
        sock.close()
        raise OSError(err, os.strerror(err))
    return sock


def remove(path: str, made: Identity) -> None:
    """Unlink *path* if it is still the socket file we made (not one that replaced it)."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == made:
            os.unlink(path)
    except OSError:
        pass
