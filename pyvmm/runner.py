"""``pyvmm run``: build a VM from options, run it, report, and pick the exit status.

Exit status: the guest's own code (0-255) when it shuts down; 124 when
``--timeout`` stops it; 125 when it crashes (a crash report goes to stderr);
128+N after host signal N (every stop signal of :mod:`pyvmm.stopsignals`); 2 for a user error (bad option,
bad ELF, no ``/dev/kvm``), reported as one line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys

from pyvmm import stopsignals
from pyvmm.options import RunOptions

EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_CRASH = 125


def fail(message: str) -> int:
    """Print the one-line user error and return the usage exit status."""
    print(f"pyvmm: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def format_stats(machine) -> str:
    """``--stats``: hypercalls by number, then the address spaces (pages, faults by kind)."""
    from pyvmm.paravirt.abi import Hypercall

    counts = machine.dispatcher.counts
    names = {int(h): h.name for h in Hypercall}
    calls = " ".join(f"{names.get(nr, nr)}={n}" for nr, n in enumerate(counts) if n)
    return f"pyvmm: stats: hypercalls: {calls or 'none'}\npyvmm: stats: {machine.address_spaces.format_stats()}"


def memory_and_timeout(opts) -> int:
    """``--memory`` in bytes, after checking ``--timeout``; raises ``ValueError`` with the
    one-line message. Shared by ``pyvmm run`` and ``pyvmm exec``."""
    from pyvmm.memory import parse_size

    try:
        memory = parse_size(opts.memory)
    except ValueError as e:
        raise ValueError(f"--memory: {e}") from None
    if opts.timeout is not None and not opts.timeout > 0:
        raise ValueError("--timeout must be a positive number of seconds")
    return memory


def run_guest(opts: RunOptions) -> int:
    import pyvmm.boundedstderr  # now: with the VM built, the fds for an import may be gone
    from pyvmm.guest import GuestBuildError, bundled_kernel
    from pyvmm.kvm import KvmError
    from pyvmm.loader import LoaderError

    try:
        memory = memory_and_timeout(opts)
    except ValueError as e:
        return fail(str(e))
    from pyvmm.devices.spec import SpecError, build_specs

    try:
        channels = build_specs(opts.disk, opts.channel)
    except SpecError as e:
        return fail(str(e))
    try:
        kernel = opts.guest or bundled_kernel()
    except GuestBuildError as e:
        return fail(str(e))

    ext = None  # plugins only: a plain run imports none of their machinery
    if opts.plugin:
        from pyvmm.extensions import Extensions
        from pyvmm.plugins import PluginError, load

        ext = Extensions(first_channel_handle=1 + len(channels))
        for path in opts.plugin:
            try:
                load(path, ext, opts)
            except PluginError as e:
                return fail(str(e))
    if opts.trace_filter is not None and opts.trace is None:
        return fail("--trace-filter needs --trace")
    gdb = None
    if opts.gdb is not None or opts.gdb_wait or opts.gdb_nowait:
        from pyvmm.gdb import launch as gdb_launch  # now, as all of pyvmm.gdb: seccomp refuses imports later

        try:
            gdb = gdb_launch.prepare(opts)
        except gdb_launch.GdbSetupError as e:
            return fail(str(e))

    if opts.stats:  # imported now: under the seccomp filter an import cannot open its file
        import pyvmm.extensions  # noqa: F401  (format_errors, after the run)
    stats_file = None
    if opts.stats_json is not None:
        from pyvmm.reportfile import ReportFileError, open_report_file

        try:  # before the build (a mistake costs nothing) and before seccomp (which refuses open)
            stats_file = open_report_file(opts.stats_json)
        except ReportFileError as e:
            return fail(f"--stats-json: {e}")

    from pyvmm.machine import Machine, MachineConfig, MachineError

    try:
        snapshot_dir, snapshot_signal = snapshot_options(opts)
    except ValueError as e:
        _discard(stats_file, gdb)
        return fail(str(e))

    config = MachineConfig(
        kernel=kernel,
        memory=memory,
        cmdline=opts.cmdline,
        vcpus=opts.vcpus,
        timeout=opts.timeout,
        channels=channels,
        stats=opts.stats or opts.stats_json is not None,
        kvm_path=os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm"),
        extra_channels=ext.devices() if ext else (),
        snapshot_dir=snapshot_dir,
        hw_api=opts.hw_api,
    )
    try:
        machine = Machine(config)
    except (KvmError, LoaderError, MachineError) as e:
        _discard(stats_file, gdb)
        _close(snapshot_dir)
        return fail(str(e))
    except OSError as e:  # the host ran out of something while building (EMFILE, ENOMEM): not a crash
        _discard(stats_file, gdb)
        _close(snapshot_dir)
        return fail(f"cannot build the VM: {e.strerror or e}")
    return execute(machine, opts, snapshot_signal, ext=ext, stats_file=stats_file, gdb=gdb)


def snapshot_options(opts):
    """``--snapshot-dir`` opened (before the seccomp filter) and ``--snapshot-on``'s signal
    number. Raises ``ValueError`` with the one-line message."""
    if opts.snapshot_on is not None and opts.snapshot_dir is None:
        raise ValueError("--snapshot-on needs --snapshot-dir")
    signum = None
    if opts.snapshot_on is not None:
        name = opts.snapshot_on.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal, name, None)
        if not isinstance(sig, signal.Signals) or sig in _NOT_FOR_SNAPSHOTS:
            raise ValueError(f"--snapshot-on {opts.snapshot_on}: not a signal pyvmm can take (e.g. SIGUSR1)")
        signum = int(sig)
    if opts.snapshot_dir is None:
        return None, signum
    from pyvmm.snapshot.format import SnapshotDir, SnapshotError

    try:
        return SnapshotDir(opts.snapshot_dir), signum
    except SnapshotError as e:
        raise ValueError(str(e)) from None


#: Signals --snapshot-on cannot mean: uncatchable, the stop signals, or the vCPU kick.
_NOT_FOR_SNAPSHOTS = {signal.SIGKILL, signal.SIGSTOP, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGRTMIN}


def _close(snapshot_dir) -> None:
    if snapshot_dir is not None:
        snapshot_dir.close()


def execute(machine, opts, snapshot_signal: int | None = None, *, ext=None, stats_file=None, gdb=None) -> int:
    """Run a built *machine* under the signal handlers and the seccomp filter; report; the
    exit status. Shared by ``pyvmm run`` and ``pyvmm restore``."""
    from pyvmm.boundedstderr import BoundedStderr  # now: the seccomp filter refuses imports later
    from pyvmm.machine import RunResult, StopReason

    if ext is not None and ext.hooks["stop"]:
        from pyvmm.api import result_of  # now: under the seccomp filter an import cannot open its file

    def on_signal(signum, frame):
        machine.request_stop(RunResult(StopReason.SIGNAL, exit_code=128 + signum, signal=signum))

    def on_snapshot_signal(signum, frame):
        machine.request_snapshot()  # run()'s main-thread poll takes it: a handler must not take locks

    # Every stop signal, not only SIGINT/SIGTERM (a SIGHUP must close the devices too), and
    # until the machine is closed: a signal must not unwind half-way through closing it.
    # --snapshot-on's signal is the one taken out: it snapshots, never stops.
    exclude = () if snapshot_signal is None else (snapshot_signal,)
    previous = stopsignals.handle(on_signal, exclude)
    if snapshot_signal is not None:
        previous[snapshot_signal] = signal.signal(snapshot_signal, on_snapshot_signal)
    if stopsignals.received() is not None:  # one came before, and its StopSignal was lost
        on_signal(stopsignals.received(), None)
    stub = None
    if gdb is not None:
        from pyvmm.gdb import launch as gdb_launch

        stub = gdb_launch.start(gdb, machine)
    try:
        result = _run_built(machine, opts, ext, stats_file, gdb)
    finally:
        if stub is not None:
            stub.close()  # the VM has stopped: gdb gets its W (or X) packet
        machine.close()
        stopsignals.restore(previous)
        sys.stderr = BoundedStderr()  # the VM has stopped: a stderr nobody reads must not hold pyvmm
    if isinstance(result, int):
        return result
    if ext is not None and ext.hooks["stop"]:
        ext.stopped(result_of(result, machine))
    if machine.metrics is not None:
        status = _report_stats(machine.metrics, opts, stats_file)
        if status:
            return status
    if getattr(opts, "stats", False):
        print(format_stats(machine), file=sys.stderr)
        from pyvmm.extensions import format_errors

        errors = format_errors(machine)
        if errors:
            print(errors, file=sys.stderr)
    if result.reason is StopReason.CRASH and result.crash is not None:
        print(result.crash.format(), file=sys.stderr)
    elif result.reason is StopReason.TIMEOUT:
        print(f"pyvmm: guest stopped after --timeout {opts.timeout:g}s", file=sys.stderr)
    elif result.reason is StopReason.KILLED:
        print("pyvmm: killed by gdb", file=sys.stderr)
    elif result.reason is StopReason.SIGNAL:
        print(f"pyvmm: stopped by {stopsignals.name(result.signal)}", file=sys.stderr)
    return result.exit_code


def _run_built(machine, opts: RunOptions, ext, stats_file, gdb=None):
    """Attach the extensions and the tracer, contain pyvmm, run the VM: the RunResult, or
    the exit status of a user error. The caller closes *machine*, whatever happens."""
    from pyvmm.machine import MachineError, RunResult, StopReason

    if ext:
        ext.attach(machine)
    if getattr(opts, "trace", None) is not None:  # pyvmm restore has no --trace
        from pyvmm.trace import TraceError, Tracer

        try:
            Tracer.open(opts.trace, machine, opts.trace_filter).attach(machine)
        except TraceError as e:
            _discard(stats_file)
            return fail(str(e))
    if not opts.no_seccomp:
        from pyvmm import sandbox

        if sandbox.available():  # where libseccomp is missing, pyvmm runs uncontained
            try:
                if gdb is not None:
                    from pyvmm.gdb import launch as gdb_launch

                    machine.contain(gdb_launch.sandbox_rules(gdb))
                else:
                    machine.contain()
            except sandbox.SandboxError as e:
                if gdb is not None:
                    machine.stop(RunResult(StopReason.SIGNAL, exit_code=EXIT_USAGE))
                return fail(f"cannot confine pyvmm with seccomp ({e}); --no-seccomp runs without it")
    try:
        return machine.run()
    except MachineError as e:
        return fail(str(e))


def _discard(stats_file, gdb=None) -> None:
    if stats_file is not None:
        stats_file.close()
    if gdb is not None:
        gdb.close()


def _report_stats(metrics, opts: RunOptions, stats_file) -> int:
    """``--stats`` table to stderr (stdout is the guest's console); ``--stats-json`` to *stats_file*."""
    summary = metrics.summary()
    if opts.stats:
        print(summary.format(), file=sys.stderr)
    if stats_file is not None:
        try:
            with stats_file:
                stats_file.write(summary.to_json() + "\n")
        except OSError as e:
            return fail(f"--stats-json: cannot write {opts.stats_json}: {e.strerror}")
    return 0
