"""How a run loop ends, and how a VM run ends: small typed values, no shared flags.

A vCPU's loop returns an :class:`Outcome`; the vCPU's thread turns it into
the machine's :class:`RunResult` (the first one recorded wins).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pyvmm.crash import CrashReport


class OutcomeKind(enum.Enum):
    CONTINUE = "continue"  # keep running (an exit handler's answer; a loop never returns it)
    STOPPED = "stopped"  # the VM is stopping: the loop returns, nothing to report
    SHUTDOWN = "shutdown"  # the guest called SHUTDOWN with ``code``
    CRASH = "crash"  # the guest cannot go on: ``reason`` says why


class Outcome(NamedTuple):
    kind: OutcomeKind
    code: int = 0
    reason: str = ""

    @staticmethod
    def shutdown(code: int) -> Outcome:
        return Outcome(OutcomeKind.SHUTDOWN, code)

    @staticmethod
    def crash(reason: str) -> Outcome:
        return Outcome(OutcomeKind.CRASH, reason=reason)


CONTINUE = Outcome(OutcomeKind.CONTINUE)
STOPPED = Outcome(OutcomeKind.STOPPED)


class StopReason(enum.Enum):
    SHUTDOWN = "shutdown"  # the guest called SHUTDOWN
    CRASH = "crash"  # triple fault, internal error, unhandled exit
    TIMEOUT = "timeout"  # --timeout elapsed
    SIGNAL = "signal"  # SIGINT / SIGTERM on the host
    KILLED = "killed"  # gdb's kill (pyvmm run --gdb)


@dataclass
class RunResult:
    reason: StopReason
    exit_code: int = 0
    crash: CrashReport | None = None
    signal: int | None = None
