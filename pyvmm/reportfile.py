"""Open a file pyvmm writes a report into (``--stats-json``): a regular file, never blocking.

Opening a FIFO for writing blocks until a reader comes, and writing a pipe
blocks while its reader does not read: either would leave pyvmm deaf to its
``--timeout`` and to signals. So the path is opened with ``O_NONBLOCK`` (a
FIFO then fails with ``ENXIO`` or opens without waiting) and refused unless it
is a regular file.
"""

from __future__ import annotations

import os
import stat
from typing import TextIO


class ReportFileError(Exception):
    """The path cannot be used; the message is the one line the user sees (after the flag)."""


def check_report_path(path: str) -> None:
    """Refuse *path* if it exists and is not a regular file (a FIFO, a device, a directory)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ReportFileError(f"cannot write {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ReportFileError(f"{path} is not a regular file")


def open_report_file(path: str) -> TextIO:
    """Create or truncate *path* for writing text; raises :class:`ReportFileError`."""
    check_report_path(path)  # before truncating: a device or FIFO given by mistake is left alone
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise ReportFileError(f"cannot write {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in after the stat above
            raise ReportFileError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "w")
    except BaseException:
        os.close(fd)
        raise
