"""A machine's snapshot controller: where snapshots go, who may take one, and reset.

One per :class:`~pyvmm.machine.Machine`. It serialises snapshots (one at a time),
implements the SNAPSHOT hypercall's service (:meth:`guest_snapshot`), the host's
triggers (:meth:`take`: ``--snapshot-on SIGUSR1``, ``VM.snapshot``), and the
in-process reset (:meth:`reset`, :mod:`pyvmm.snapshot.reset`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmm.paravirt.abi import Errno
from pyvmm.paravirt.dispatcher import HypercallError
from pyvmm.snapshot.format import SnapshotDir, SnapshotError
from pyvmm.snapshot.reset import Baseline
from pyvmm.snapshot.take import pause_and_capture

if TYPE_CHECKING:
    from pyvmm.vcpu import Vcpu


@dataclass
class SnapshotReport:
    """What one snapshot cost: for the requester's message and the measurements."""

    path: str
    pages: int  # pages written (non-zero)
    bytes_written: int
    pause_ns: int  # vCPUs held
    total_ns: int


class SnapshotControl:
    def __init__(self, machine, destination: SnapshotDir | None) -> None:
        self._machine = machine
        self.destination = destination
        self._lock = threading.Lock()
        self.last: SnapshotReport | None = None
        self.last_error: str | None = None
        #: Set by take(resettable=True): what reset() rolls back to.
        self.baseline = None
        self.clones = 0
        #: Every snapshot becomes reset()'s baseline (the API: a fuzzer's guest snapshots itself).
        self.resettable = False

    @property
    def available(self) -> bool:
        return self.destination is not None

    def close(self) -> None:
        if self.baseline is not None:
            self.baseline.close()
            self.baseline = None
        if self.destination is not None:
            self.destination.close()

    def take(
        self,
        caller: Vcpu | None = None,
        *,
        resettable: bool = False,
        wait: bool = True,
        destination: SnapshotDir | None = None,
    ) -> SnapshotReport:
        """Snapshot the running VM into the destination; the VM goes on either way.
        *resettable*: keep it as the baseline of :meth:`reset` (dirty logging on from now).
        Raises :class:`SnapshotError` (no destination, another snapshot under way, a failed write)."""
        dest = destination or self.destination
        if dest is None:
            raise SnapshotError("no snapshot destination (pyvmm run --snapshot-dir DIR)")
        if not self._lock.acquire(blocking=wait):
            raise SnapshotError("another snapshot is being taken")
        try:
            m = self._machine
            t0 = time.monotonic_ns()
            manifest = pause_and_capture(m, caller)
            try:
                ram = m.memory.view(0, m.memory.size)
                try:
                    written = dest.write(manifest, ram)
                finally:
                    ram.release()
                if resettable:
                    if self.baseline is not None:
                        self.baseline.close()
                    self.baseline = Baseline.start(m, manifest, dest.open_memory())
                t1 = time.monotonic_ns()
            finally:
                m.vcpus.resume()
            pages = sum(n for _, n in manifest.memory_runs)
            report = SnapshotReport(dest.path, pages, written, t1 - t0, time.monotonic_ns() - t0)
            self.last, self.last_error = report, None
            return report
        except SnapshotError as e:
            self.last_error = str(e)
            raise
        finally:
            self._lock.release()

    def guest_snapshot(self, vcpu: Vcpu) -> int:
        """The SNAPSHOT hypercall: 0 once written (a restored copy gets its clone id).
        Raises :class:`HypercallError`: ``-ENOSYS`` with no destination, ``-EBUSY`` while
        another snapshot is taken, ``-EIO``/``-ENOSPC`` when it could not be written."""
        if self.destination is None:
            raise HypercallError(Errno.ENOSYS, "no snapshot destination")
        try:
            self.take(vcpu, resettable=self.resettable, wait=False)
        except SnapshotError as e:
            if "another snapshot" in str(e):
                raise HypercallError(Errno.EBUSY, str(e)) from None
            _say(f"pyvmm: snapshot failed: {e}")
            raise HypercallError(Errno.ENOSPC if "No space" in str(e) else Errno.EIO, str(e)) from None
        return 0

    def baseline_reset(self, clone_id: int) -> list[int]:
        """Roll the stopped VM back to the baseline (:mod:`pyvmm.snapshot.reset`); returns
        the vCPUs to start. Raises :class:`SnapshotError`."""
        if self.baseline is None:
            raise SnapshotError("no snapshot to reset to (take one with resettable=True first)")
        return self.baseline.reset(self._machine, clone_id)


def _say(line: str) -> None:
    """One line on stderr from a vCPU thread, never blocking it (stderr may be a full pipe)."""
    try:
        os.write(2, (line + "\n").encode(errors="replace")[:4096])
    except OSError:
        pass
