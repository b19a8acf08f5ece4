"""One host thread that fires the vCPUs' one-shot timers on the monotonic clock.

A vCPU blocked in ``BLOCK``/``HLT`` also wakes itself at its own timer
deadline (its wait has that timeout), which saves a thread hand-off; this
thread covers vCPUs that are running guest code when their timer expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pyvmm.paravirt.services import ThreadStartError

#: Longest single wait: a guest's deadline may be any u64 (2**64 ns is 584 years), beyond
#: what a lock timeout takes (OverflowError); the loop simply waits again.
MAX_WAIT_S = 3600.0


class TimerService:
    def __init__(self, on_expire: Callable[[Any], None]) -> None:
        self._on_expire = on_expire
        self._cond = threading.Condition()
        self._deadlines: dict[Any, int] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None

    def arm(self, owner: Any, deadline_ns: int) -> None:
        with self._cond:
            self._deadlines[owner] = deadline_ns
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="pyvmm-timers", daemon=True)
                try:
                    thread.start()
                except RuntimeError as e:  # the host has no thread for us: the call fails, nothing armed
                    del self._deadlines[owner]
                    raise ThreadStartError(f"cannot start the timer thread ({e})") from None
                self._thread = thread
            self._cond.notify()

    def cancel(self, owner: Any) -> None:
        with self._cond:
            self._deadlines.pop(owner, None)

    def armed(self) -> bool:
        return bool(self._deadlines)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        from pyvmm.kvm._libc import set_timer_slack

        set_timer_slack(1)  # fire on time, not up to 50 us late
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic_ns()
                due = [owner for owner, d in self._deadlines.items() if d <= now]
                for owner in due:
                    del self._deadlines[owner]
                if not due:
                    nearest = min(self._deadlines.values(), default=None)
                    self._cond.wait(None if nearest is None else min((nearest - now) / 1e9, MAX_WAIT_S))
                    continue
            for owner in due:
                self._on_expire(owner)
