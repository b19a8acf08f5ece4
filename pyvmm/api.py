"""pyvmm as a library: build a VM, give it hypercalls and channels written in Python, run it.

The documented surface is :class:`VM`, :class:`Result`, :class:`HypercallError` and
:class:`~pyvmm.devices.base.Channel` (re-exported as ``pyvmm.Channel``); docs/api.md
is the reference and its examples are tests. Everything else in pyvmm is private.

A :class:`VM` is configured first (options, :meth:`VM.hypercall`, :meth:`VM.add_channel`,
:meth:`VM.on`) and built when it first runs: the guest's boot info announces what it
was given. Then :meth:`VM.run` runs it to completion, or :meth:`VM.start` /
:meth:`VM.wait` / :meth:`VM.stop` step by step; :meth:`VM.close` (or ``with``)
releases it.

Over ~400 lines on purpose: this module *is* the public surface docs/api.md describes;
what it builds on lives below it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvmm.devices.base import Channel, ChannelError
from pyvmm.extensions import ExtensionError, Extensions, PyHypercall
from pyvmm.outcome import RunResult, StopReason
from pyvmm.paravirt.abi import EXT_BASE, EXT_COUNT, ChannelFlag, ChannelKind, Errno
from pyvmm.paravirt.dispatcher import HypercallError

if TYPE_CHECKING:
    from pyvmm.machine import Machine
    from pyvmm.memory import GuestMemory

__all__ = [
    "EXT_BASE",
    "EXT_COUNT",
    "PIPE",
    "VM",
    "Channel",
    "ChannelError",
    "ChannelFlag",
    "ChannelKind",
    "Errno",
    "HypercallError",
    "Result",
    "StopReason",
    "VmError",
]

#: Bytes a pipe always holds without blocking (Linux's default pipe is 64 KiB; POSIX promises 4 KiB).
_PIPE_BUF_MIN = 4096

#: ``VM(stdin=PIPE)``: the guest's console input comes from :meth:`VM.write_console`.
PIPE = -1


class VmError(Exception):
    """The VM cannot be built or run as asked; the message is one line."""


@dataclass
class Result:
    """How a run ended."""

    reason: StopReason
    exit_code: int
    #: The crash report's text (``reason`` is CRASH), else None.
    crash: str | None = None
    #: Hypercall counts by name (``--stats``'s first line, always collected).
    hypercalls: dict[str, int] = field(default_factory=dict)


class VM:
    """One guest VM, built on first :meth:`run`/:meth:`start` from the same options as ``pyvmm run``.

    *guest*: a static x86-64 ELF path, or None for the bundled kernel. *console*:
    None captures the guest's output (:attr:`console_output`), a callable gets each
    chunk of bytes as it comes, an int is a host fd to write to. *stdin*: bytes the
    guest reads from the console (then end of input), or :data:`PIPE` to feed it with
    :meth:`write_console`. *trace*: ``--trace`` for this VM, to a file path or a host fd
    (*trace_filter*: ``--trace-filter``'s comma-separated names). Raises :class:`VmError`.
    """

    def __init__(
        self,
        guest: str | os.PathLike | None = None,
        *,
        memory: str | int = "64M",
        vcpus: int = 1,
        cmdline: str = "",
        disks: Iterable[str] = (),
        channels: Iterable[str] = (),
        timeout: float | None = None,
        console: Callable[[bytes], None] | int | None = None,
        stdin: bytes | int = b"",
        trace: str | os.PathLike | int | None = None,
        trace_filter: str | None = None,
        snapshot_dir: str | os.PathLike | None = None,
    ) -> None:
        from pyvmm.devices.spec import SpecError, build_specs
        from pyvmm.memory import parse_size

        try:
            self._memory = memory if isinstance(memory, int) else parse_size(memory)
            self._specs = build_specs(list(disks), list(channels))
        except (ValueError, SpecError) as e:
            raise VmError(str(e)) from None
        self._guest = None if guest is None else os.fspath(guest)
        self._vcpus = vcpus
        self._cmdline = cmdline
        self._timeout = timeout
        self._console = console
        self._stdin = stdin
        self._ext = Extensions(first_channel_handle=1 + len(self._specs))
        self._trace = trace
        self._trace_filter = trace_filter
        self._machine: Machine | None = None
        self._stdin_w = -1  # stdin=PIPE: the write end write_console() writes to
        self._captured = bytearray()
        self._drainer: threading.Thread | None = None
        self._console_w = -1  # the write end of our console pipe, closed when the VM stops
        self._fds: list[int] = []
        self._runner: threading.Thread | None = None
        self._result: Result | None = None
        #: Where snapshots go; None: a private temporary directory, made at build.
        self._snapshot_dir = None if snapshot_dir is None else os.fspath(snapshot_dir)
        self._own_snapshot_dir: str | None = None
        self._restore_from: str | None = None
        self._consumed = 0  # console bytes the drainer has handed to the sink
        self._consumed_cond = threading.Condition()

    @classmethod
    def from_snapshot(cls, path: str | os.PathLike, **options) -> VM:
        """A VM that resumes the snapshot in directory *path* (``pyvmm restore`` in process):
        its RAM is the snapshot's memory file mapped copy-on-write. *options* are the
        constructor's (``disks`` replaces the snapshot's disk paths). Raises :class:`VmError`
        when it runs, for a snapshot that cannot be restored."""
        vm = cls(None, **options)
        vm._restore_from = os.fspath(path)
        return vm

    # -- configuring (before the first run) ----------------------------------------------
    def hypercall(self, nr: int, fn: PyHypercall) -> None:
        """Serve extension hypercall *nr* (``EXT_BASE <= nr < EXT_BASE + EXT_COUNT``) with *fn*.

        ``fn(vcpu_id, args, memory)`` returns a non-negative int (the guest's ``rax``) or
        raises :class:`HypercallError`; any other exception gives the guest ``-EIO``.
        Raises :class:`VmError` for a number outside the range or taken.
        """
        self._configuring()
        try:
            self._ext.hypercall(nr, fn)
        except ExtensionError as e:
            raise VmError(str(e)) from None

    def add_channel(self, channel: Channel) -> int:
        """Give the guest *channel* (a :class:`Channel` subclass); returns its handle, after
        the console, the disks and the streams."""
        self._configuring()
        try:
            return self._ext.add_channel(channel)
        except ExtensionError as e:
            raise VmError(str(e)) from None

    def on(self, event: str, fn: Callable) -> None:
        """Call *fn* on *event*: ``"before_hypercall"`` (``fn(vcpu_id, nr, args)``),
        ``"hypercall"`` (``fn(vcpu_id, nr, args, result, ns)`` after each one), ``"exit"``
        (``fn(vcpu_id, exit_reason)`` for each exit that is not a hypercall), all on the
        vCPU's thread; or ``"stop"`` (``fn(result)``, once, with the :class:`Result`)."""
        self._configuring()
        try:
            self._ext.on(event, fn)
        except ExtensionError as e:
            raise VmError(str(e)) from None

    def _configuring(self) -> None:
        if self._machine is not None:
            raise VmError("the VM is already built: configure it before the first run")

    # -- running ------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> Result:
        """Build (if needed) and run until the guest shuts down, crashes or *timeout* passes."""
        self.start(timeout)
        return self.wait()

    def start(self, timeout: float | None = None) -> None:
        """Build and start the VM in the background; :meth:`wait` for its result. After
        :meth:`reset`, start it again: it resumes from the snapshot."""
        if self._runner is not None:
            raise VmError("the VM has already been started (reset() it to run it again)")
        from pyvmm.vcpu import install_kick_handler

        if self._machine is None:
            machine = self._build(timeout if timeout is not None else self._timeout)
        else:
            machine = self._machine
            if timeout is not None:
                machine.config.timeout = timeout
        if threading.current_thread() is threading.main_thread():
            install_kick_handler()  # the VM runs on another thread: the handler must exist first
        self._runner = threading.Thread(target=self._run, args=(machine,), name="pyvmm-vm", daemon=True)
        self._runner.start()

    def wait(self, timeout: float | None = None) -> Result:
        """The result, once the VM has stopped. Raises ``TimeoutError`` if it runs on past *timeout*."""
        if self._runner is None:
            raise VmError("the VM was not started")
        self._runner.join(timeout)
        if self._runner.is_alive():
            raise TimeoutError("the VM is still running")
        if self._drainer is not None:
            # Everything the console wrote is in the pipe (finish_output): wait until the drainer took it.
            written = self._machine.console.bytes_out
            with self._consumed_cond:
                self._consumed_cond.wait_for(lambda: self._consumed >= written, timeout=5)
        return self._result

    # -- snapshots (docs/snapshot.md) ----------------------------------------------------
    def snapshot(self, path: str | os.PathLike | None = None):
        """Snapshot the running VM into directory *path* (default: the VM's snapshot
        directory) and make it the one :meth:`reset` goes back to. The VM goes on.
        Returns a report (``pages``, ``bytes_written``, ``pause_ns``, ``total_ns``).
        Raises :class:`VmError`."""
        from pyvmm.snapshot.format import SnapshotDir, SnapshotError

        if self._machine is None or self._runner is None or not self._runner.is_alive():
            raise VmError("snapshot() needs a running VM")
        try:
            dest = None if path is None else SnapshotDir(os.fspath(path))
            try:
                return self._machine.snapshots.take(resettable=True, destination=dest)
            finally:
                if dest is not None:
                    dest.close()
        except SnapshotError as e:
            raise VmError(str(e)) from None

    def reset(self) -> None:
        """Roll the stopped VM back to its last snapshot (the guest's SNAPSHOT call or
        :meth:`snapshot`), restoring only the pages written since, plus the vCPU and
        device state; then :meth:`run` resumes it from there. Raises :class:`VmError`."""
        from pyvmm.snapshot.format import SnapshotError

        if self._machine is None:
            raise VmError("the VM is not built yet")
        if self._runner is not None and self._runner.is_alive():
            raise VmError("reset() needs a stopped VM: wait() for it, or stop() it first")
        try:
            self._machine.reset()
        except SnapshotError as e:
            raise VmError(str(e)) from None
        self._runner = None
        self._result = None

    @property
    def resets(self):
        """The baseline's counters (``resets``, ``last_dirty`` pages, ``last_reset_ns``), or None."""
        return None if self._machine is None else self._machine.snapshots.baseline

    def stop(self) -> None:
        """Ask a running VM to stop (its result's reason is SIGNAL, exit code 0)."""
        if self._machine is not None:
            self._machine.request_stop(RunResult(StopReason.SIGNAL, exit_code=0, signal=0))

    @property
    def console_output(self) -> bytes:
        """What the guest wrote to its console (when *console* was None)."""
        return bytes(self._captured)

    @property
    def memory(self) -> GuestMemory:
        """Guest RAM through the checked accessor (once built)."""
        if self._machine is None:
            raise VmError("the VM is not built yet")
        return self._machine.memory

    def close(self) -> None:
        if self._runner is not None and self._runner.is_alive():
            self.stop()
            self._runner.join()
        if self._machine is not None:
            self._machine.close()
        self._close_console()
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        if self._own_snapshot_dir is not None:
            import shutil

            shutil.rmtree(self._own_snapshot_dir, ignore_errors=True)
            self._own_snapshot_dir = None
        self.close_console_input()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __enter__(self) -> VM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------
    def _build(self, timeout: float | None) -> Machine:
        from pyvmm.guest import GuestBuildError, bundled_kernel
        from pyvmm.kvm import KvmError
        from pyvmm.loader import LoaderError
        from pyvmm.machine import Machine, MachineConfig, MachineError
        from pyvmm.snapshot.format import SnapshotDir, SnapshotError

        restore = specs = None
        try:
            if self._restore_from is not None:
                restore, specs = self._open_restore()
            kernel = self._guest or (self._restore_from if restore else bundled_kernel(quiet=True))
        except GuestBuildError as e:
            raise VmError(str(e)) from None
        try:
            if self._snapshot_dir is None:
                import tempfile

                self._own_snapshot_dir = self._snapshot_dir = tempfile.mkdtemp(prefix="pyvmm-snap-")
            snapshot_dir = SnapshotDir(self._snapshot_dir)
        except (OSError, SnapshotError) as e:
            if restore is not None:
                restore.close()
            raise VmError(f"snapshot directory: {e}") from None
        out_fd = self._console_fd()
        in_fd = self._stdin_fd()
        m = restore.manifest if restore is not None else None
        config = MachineConfig(
            kernel=kernel,
            memory=self._memory if m is None else m.memory_size,
            cmdline=self._cmdline if m is None else m.cmdline,
            vcpus=self._vcpus if m is None else len(m.vcpus),
            timeout=timeout,
            console_fd=out_fd,
            console_in_fd=in_fd,
            channels=self._specs if m is None else specs,
            extra_channels=self._ext.devices(),
            kvm_path=os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm"),
            restore=restore,
            snapshot_dir=snapshot_dir,
        )
        try:
            machine = Machine(config)
        except (KvmError, LoaderError, MachineError, SnapshotError) as e:
            snapshot_dir.close()
            raise VmError(str(e)) from None
        except OSError as e:
            snapshot_dir.close()
            raise VmError(f"cannot build the VM: {e.strerror or e}") from None
        finally:
            if restore is not None:
                restore.close()
        machine.snapshots.resettable = True  # the guest's SNAPSHOT is what reset() goes back to
        self._ext.attach(machine)
        if self._trace is not None:
            from pyvmm.trace import TraceError, Tracer

            try:
                Tracer.open(self._trace, machine, self._trace_filter).attach(machine)
            except TraceError as e:
                machine.close()
                raise VmError(str(e)) from None
        self._machine = machine
        return machine

    def _open_restore(self):
        from pyvmm.snapshot.format import SnapshotError, host_boot_id
        from pyvmm.snapshot.restore import channel_specs, open_snapshot

        try:
            r = open_snapshot(self._restore_from, boot_id=host_boot_id())
        except SnapshotError as e:
            raise VmError(f"cannot restore {self._restore_from}: {e}") from None
        try:
            disks = [s.path for s in self._specs if not hasattr(s, "server")]
            streams = [
                f"{s.name}=unix:{s.path}{',server' if s.server else ''}" for s in self._specs if hasattr(s, "server")
            ]
            return r, channel_specs(r, disks, streams)
        except SnapshotError as e:
            r.close()
            raise VmError(f"cannot restore {self._restore_from}: {e}") from None

    def _run(self, machine: Machine) -> None:
        # The console stays open after the run: a reset VM runs again on it (close() ends it).
        self._result = result_of(machine.run(), machine)
        self._ext.stopped(self._result)

    def _close_console(self) -> None:
        if self._console_w >= 0:
            os.close(self._console_w)
            self._console_w = -1

    def _console_fd(self) -> int:
        if isinstance(self._console, int):
            return self._console
        r, w = os.pipe()
        self._console_w = w
        sink = self._captured.extend if self._console is None else self._console
        self._drainer = threading.Thread(target=self._drain, args=(r, sink), name="pyvmm-console", daemon=True)
        self._drainer.start()
        return w

    def _drain(self, fd: int, sink: Callable[[bytes], None]) -> None:
        try:
            while chunk := os.read(fd, 65536):
                sink(chunk)
                with self._consumed_cond:
                    self._consumed += len(chunk)
                    self._consumed_cond.notify_all()
        finally:
            os.close(fd)

    def write_console(self, data: bytes) -> None:
        """Send *data* to the guest's console input (``stdin=PIPE``); blocks while the pipe
        is full. ``close_console_input()`` then gives the guest end of input."""
        if self._stdin_w < 0:
            raise VmError("write_console() needs VM(stdin=pyvmm.PIPE), and before close_console_input()")
        view = memoryview(data)
        while view:
            view = view[os.write(self._stdin_w, view) :]

    def close_console_input(self) -> None:
        """End of input for the guest's console (its RECV returns 0 once it has read all)."""
        if self._stdin_w >= 0:
            os.close(self._stdin_w)
            self._stdin_w = -1

    def _stdin_fd(self) -> int:
        r, w = os.pipe()
        self._fds.append(r)
        if isinstance(self._stdin, int):
            if self._stdin != PIPE:
                raise VmError("stdin is bytes or pyvmm.PIPE")
            self._stdin_w = w
            return r
        if len(self._stdin) <= _PIPE_BUF_MIN:  # fits in the pipe: no thread (the common, empty case)
            _feed(w, self._stdin)
            return r
        # A thread, as the guest may read less than a pipe holds; it ends with EPIPE at close.
        threading.Thread(target=_feed, args=(w, self._stdin), name="pyvmm-stdin", daemon=True).start()
        return r


def result_of(raw: RunResult, machine: Machine) -> Result:
    """The public :class:`Result` of a finished *machine*'s run."""
    from pyvmm.paravirt.abi import Hypercall as Hc

    names = {int(h): h.name for h in Hc}
    counts = {names.get(nr, f"nr{nr}"): n for nr, n in enumerate(machine.dispatcher.counts) if n}
    crash = raw.crash.format() if raw.crash is not None else None
    return Result(raw.reason, raw.exit_code, crash, counts)


def _feed(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass
    finally:
        os.close(fd)
