"""``pyvmm run``: build a VM from options, run it, report, and pick the exit status.

Exit status: the guest's own code (0-255) when it shuts down; 124 when
``--timeout`` stops it; 125 when it crashes (a crash report goes to stderr);
128+N after host signal N (SIGINT, SIGTERM); 2 for a user error (bad option,
bad ELF, no ``/dev/kvm``), reported as one line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys

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


def run_guest(opts: RunOptions) -> int:
    from pyvmm.guest import GuestBuildError, bundled_kernel
    from pyvmm.kvm import KvmError
    from pyvmm.loader import LoaderError
    from pyvmm.memory import parse_size

    try:
        memory = parse_size(opts.memory)
    except ValueError as e:
        return fail(f"--memory: {e}")
    if opts.timeout is not None and not opts.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
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
        from pyvmm.api import result_of  # now: under the seccomp filter an import cannot open its file
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

    from pyvmm.boundedstderr import BoundedStderr  # now: the seccomp filter refuses imports later
    from pyvmm.machine import Machine, MachineConfig, MachineError, RunResult, StopReason

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
    )
    try:
        machine = Machine(config)
    except (KvmError, LoaderError, MachineError) as e:
        _discard(stats_file, gdb)
        return fail(str(e))
    except OSError as e:  # the host ran out of something while building (EMFILE, ENOMEM): not a crash
        _discard(stats_file, gdb)
        return fail(f"cannot build the VM: {e.strerror or e}")
    if ext:
        ext.attach(machine)
    if opts.trace is not None:
        from pyvmm.trace import TraceError, Tracer

        try:
            Tracer.open(opts.trace, machine, opts.trace_filter).attach(machine)
        except TraceError as e:
            machine.close()
            _discard(stats_file, gdb)
            return fail(str(e))
    stub = gdb_launch.start(gdb, machine) if gdb is not None else None

    def on_signal(signum, frame):
        machine.request_stop(RunResult(StopReason.SIGNAL, exit_code=128 + signum, signal=signum))

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if not opts.no_seccomp:
        from pyvmm import sandbox

        if sandbox.available():  # where libseccomp is missing, pyvmm runs uncontained
            try:
                machine.contain(gdb_launch.sandbox_rules(gdb) if gdb is not None else ())
            except sandbox.SandboxError as e:
                if stub is not None:
                    machine.stop(RunResult(StopReason.SIGNAL, exit_code=EXIT_USAGE))
                    stub.close()
                machine.close()
                return fail(f"cannot confine pyvmm with seccomp ({e}); --no-seccomp runs without it")
    try:
        result = machine.run()
    except MachineError as e:
        return fail(str(e))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stub is not None:
            stub.close()  # the VM has stopped: gdb gets its W (or X) packet
        machine.close()
        sys.stderr = BoundedStderr()  # the VM has stopped: a stderr nobody reads must not hold pyvmm
    if ext and ext.hooks["stop"]:
        ext.stopped(result_of(result, machine))
    if machine.metrics is not None:
        status = _report_stats(machine.metrics, opts, stats_file)
        if status:
            return status
    if opts.stats:
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
        print(f"pyvmm: stopped by {signal.Signals(result.signal).name}", file=sys.stderr)
    return result.exit_code


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
