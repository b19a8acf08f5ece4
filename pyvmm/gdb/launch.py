"""Glue between ``pyvmm run``'s options, the machine and the stub (the runner's side).

This is the only gdb module that sees the :class:`~pyvmm.machine.Machine`: it
takes the narrow services the stub gets (:class:`~pyvmm.gdb.stub.GdbServices`)
out of it, as the machine does for hypercall handlers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.gdb import emulated_kernel, load_map
from pyvmm.gdb.listen import GdbAddress, GdbSetupError, bound_address, open_listener, parse_gdb_address
from pyvmm.gdb.stub import GdbServices, GdbStub
from pyvmm.gdb.vmem import GuestView
from pyvmm.outcome import RunResult, StopReason

if TYPE_CHECKING:
    from pyvmm.machine import Machine
    from pyvmm.options import RunOptions

#: ``pyvmm run``'s exit status after gdb's ``kill``: as a shell shows a SIGKILLed process.
EXIT_KILLED = 137


@dataclass
class GdbLaunch:
    listener: socket.socket
    address: GdbAddress
    wait: bool

    def close(self) -> None:
        """Before a stub took the socket over (the VM could not be built)."""
        with contextlib.suppress(OSError):
            self.listener.close()
        if self.address.is_unix:
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)


def prepare(opts: RunOptions) -> GdbLaunch | None:
    """Parse ``--gdb`` and listen (before the VM is built: a mistake costs nothing).
    None without ``--gdb``. Raises :class:`GdbSetupError`."""
    if opts.gdb is None:
        if opts.gdb_wait or opts.gdb_nowait:
            raise GdbSetupError("--gdb-wait and --gdb-nowait need --gdb HOST:PORT or --gdb unix:PATH")
        return None
    if opts.gdb_wait and opts.gdb_nowait:
        raise GdbSetupError("--gdb-wait and --gdb-nowait exclude each other")
    address = parse_gdb_address(opts.gdb)
    listener = open_listener(address)
    return GdbLaunch(listener, bound_address(listener, address), wait=not opts.gdb_nowait)


def sandbox_rules(launch: GdbLaunch | None) -> tuple:
    """What the stub needs beyond the allow-list: nothing. A contained pyvmm makes no path
    call, so a Unix socket file stays after the run; the next ``--gdb unix:PATH`` replaces
    it (nobody listens there any more)."""
    return ()


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"pyvmm: gdb: {line}", file=sys.stderr, flush=True)


def kernel_has_debug_twin(path: str) -> bool:
    """Is *path* the bundled kernel's boot image (its symbols file sits next to it)?"""
    return os.path.basename(path) == "kernel.elf" and os.path.isfile(
        os.path.join(os.path.dirname(path), "kernel.debug.elf")
    )


def start(launch: GdbLaunch, machine: Machine) -> GdbStub:
    """Hand the VM's vCPUs to a stub and start its thread (before the VM runs)."""

    def kill() -> None:
        machine.request_stop(RunResult(StopReason.KILLED, exit_code=EXIT_KILLED))

    services = GdbServices(
        vcpus=machine.vcpus,
        view=GuestView(machine.memory, load_map(machine.elf.segments)),
        kill=kill,
        emulated_kernel=emulated_kernel(),
        say=_say,
    )
    stub = GdbStub(launch.listener, launch.address, services, wait=launch.wait)
    machine.attach_debugger(stub.control)
    stub.start()
    symbols = machine.config.kernel
    if kernel_has_debug_twin(str(symbols)):
        from pyvmm.guest import bundled_kernel_debug

        symbols = bundled_kernel_debug()
    target = f"target remote {launch.address.path}" if launch.address.is_unix else f"target remote {launch.address}"
    when = "the guest waits for it" if launch.wait else "the guest runs"
    _say(f"listening on {launch.address} ({when}; in gdb: file {symbols}, then {target})")
    return stub
