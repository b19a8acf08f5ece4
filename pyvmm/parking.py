"""Parking a vCPU thread outside KVM_RUN, and waking it, cheaply.

``threading.Condition`` allocates a lock and runs Python code on every wait
and notify; here one C-level lock is the wake-up token (held while nobody
has woken us) and a second one guards the ``parked`` flag, so a wake-up is
one flag test and one ``release()``.
"""

from __future__ import annotations

import _thread

#: Longest single park: a guest deadline may be any u64 ns, more than a lock timeout takes
#: (OverflowError); callers re-check their condition and park again.
MAX_PARK_S = 3600.0


class Parker:
    """One sleeper (the vCPU's own thread), any number of wakers.

    The sleeper checks its wake-up condition with :attr:`guard` held, then
    calls :meth:`park` (which releases nothing but the token wait); wakers
    make the condition true *before* calling :meth:`unpark`, so a wake-up
    is never lost.
    """

    __slots__ = ("_token", "guard", "parked")

    def __init__(self) -> None:
        self._token = _thread.allocate_lock()
        self._token.acquire()
        self.guard = _thread.allocate_lock()
        self.parked = False

    def park(self, timeout_s: float | None) -> None:
        """Sleep until :meth:`unpark` or the timeout. Call with :attr:`guard` NOT held,
        after setting :attr:`parked` under it."""
        woken = self._token.acquire(True, -1 if timeout_s is None else min(max(timeout_s, 0.0), MAX_PARK_S))
        with self.guard:
            if self.parked:  # timed out and nobody woke us
                self.parked = False
            elif not woken:  # a waker released the token just after our timeout: take it back
                self._token.acquire()

    def unpark(self) -> bool:
        """Wake the sleeper if it is parked; True if it was."""
        with self.guard:
            if not self.parked:
                return False
            self.parked = False
            self._token.release()
            return True
