"""Keep file descriptors 0, 1 and 2 taken before pyvmm opens anything.

A process started with one of them closed (``pyvmm run <&-``, a careless
supervisor) would hand that number to the next ``open``: ``/dev/kvm`` or a
``--disk`` file would become "stdin", and the console would read from (or
write guest output into) it. Whatever is closed is pointed at ``/dev/null``
instead, so a closed stdin reads as end of input and a closed stdout discards.
"""

from __future__ import annotations

import os

_STD_FDS = (0, 1, 2)


def reserve_std_fds() -> None:
    """Open ``/dev/null`` on each of fds 0-2 that is closed; call first thing in ``main``.

    Raises nothing: if even ``/dev/null`` cannot be opened there is nothing better to do.
    """
    for fd in _STD_FDS:
        try:
            os.fstat(fd)
        except OSError:
            pass
        else:
            continue
        try:
            # open() takes the lowest free number: fd itself, the lower ones being open by now.
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        except OSError:
            return
        if null != fd:  # cannot happen (the lower ones are open): but never leave fd closed
            os.dup2(null, fd, inheritable=True)
            os.close(null)
        else:
            os.set_inheritable(null, True)  # as a real stdin/stdout would be, for child processes
