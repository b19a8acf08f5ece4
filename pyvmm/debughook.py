"""The hook a debugger (``pyvmm run --gdb``, :mod:`pyvmm.gdb`) plugs into the run loop.

The loop and the machine call it at four points, each on the vCPU's own thread
except :meth:`VcpuDebugger.vm_stopping`; without ``--gdb`` there is no hook and
the hot path carries no test for one (only slow exits and thread start look).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyvmm.outcome import Outcome, RunResult
    from pyvmm.vcpu import Vcpu


class VcpuDebugger(Protocol):
    def vcpu_starting(self, vcpu: Vcpu) -> bool:
        """Before the vCPU's first ``KVM_RUN`` (own thread): arm its debug state, and wait here
        while the debugger holds the VM stopped (``--gdb-wait``). False: the VM is stopping."""
        ...

    def debug_exit(self, vcpu: Vcpu) -> Outcome | None:
        """A ``KVM_EXIT_DEBUG``, or an ``INTERNAL_ERROR`` exit (own thread): the debugger's
        outcome, having waited while the VM is stopped; None if the exit is not the debugger's
        (then it is a crash, as without a debugger)."""
        ...

    def crashed(self, vcpu: Vcpu, reason: str) -> None:
        """The vCPU cannot go on (own thread): let the user look before the crash report."""
        ...

    def vm_stopping(self, result: RunResult) -> None:
        """The VM stops with *result* (any thread): release every vCPU the debugger holds."""
        ...
