"""A reader that goes away (``pyvmm --help | head -1``) ends pyvmm quietly, like other tools.

Python reports a write to a closed pipe as ``BrokenPipeError`` (a traceback, or
"Exception ignored" from the exit's own flush), and click turns it into a silent
exit status 1. Other command-line tools die of SIGPIPE: the shell shows 141.
pyvmm exits with that status and prints nothing. (SIGPIPE itself stays ignored,
as Python sets it: a guest's console write to a closed pipe must not kill the VM.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

#: The status a shell reports for a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


@contextlib.contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """Run the body; if stdout's or stderr's reader went away, exit with :data:`EXIT_BROKEN_PIPE`."""
    stdout_was = _identity(1)
    try:
        try:
            yield
        finally:
            # Flush here, where the error can be caught, not in the interpreter's exit.
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        _exit_quietly()
    except SystemExit as e:
        if e.code == 1 and (_click_saw_broken_pipe() or _rich_saw_broken_pipe(stdout_was)):
            _exit_quietly()
        raise


def _click_saw_broken_pipe() -> bool:
    """click (and typer's copy of it) wrap stdout in ``PacifyFlushWrapper`` when they exit 1 on ``EPIPE``."""
    for name in ("typer._click.utils", "click.utils"):
        wrapper = getattr(sys.modules.get(name), "PacifyFlushWrapper", None)
        if wrapper is not None and isinstance(sys.stdout, wrapper):
            return True
    return False


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _rich_saw_broken_pipe(stdout_was: tuple[int, int] | None) -> bool:
    """rich (typer's help) points fd 1 at /dev/null and exits 1 on ``EPIPE``."""
    now = _identity(1)
    # None: fd 1 cannot be fstat'ed (the seccomp filter refuses newfstatat): no evidence of rich's swap.
    return now is not None and now != stdout_was and now == _identity_of_devnull()


def _identity_of_devnull() -> tuple[int, int] | None:
    try:
        st = os.stat(os.devnull)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _exit_quietly() -> None:
    # What is still buffered for the gone reader must not raise again at exit: point the
    # fds at /dev/null, or (under the seccomp filter, which refuses open) drop the streams.
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        sys.stdout = sys.stderr = None
    else:
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
    raise SystemExit(EXIT_BROKEN_PIPE)
