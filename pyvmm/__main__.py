"""Console-script entry point: ``pyvmm`` and ``python -m pyvmm``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from pyvmm import stopsignals

    try:
        # First: a SIGINT or SIGTERM during the build unwinds it and exits 128+N (pyvmm.stopsignals).
        stopsignals.install_early()
        from pyvmm.stdfds import reserve_std_fds

        reserve_std_fds()  # before anything opens a file: see pyvmm.stdfds
        from pyvmm.brokenpipe import quiet_broken_pipe

        with quiet_broken_pipe():
            _main(sys.argv[1:] if argv is None else argv)
    except stopsignals.StopSignal as stop:
        _stopped(stop)
    except Exception as e:
        stop = stopsignals.unwrap(e)
        if stop is None:
            raise
        _stopped(stop)  # a stop signal Python wrapped in another error: still 128+N, one line
    finally:
        stopsignals.quiet()


def _stopped(stop) -> None:
    from pyvmm import stopsignals

    _say(f"pyvmm: stopped by {stopsignals.name(stop.signum)}\n")
    sys.exit(stop.status)


def _say(line: str) -> None:
    """One line on stderr that a stderr nobody reads cannot hold (pyvmm.boundedstderr)."""
    try:
        from pyvmm.boundedstderr import BoundedStderr

        BoundedStderr().write(line)
    except Exception:  # last words: nothing is left to report a failure with
        pass


def _main(args: list[str]) -> None:
    if args[:1] == ["run"]:
        from pyvmm.options import expand_bare_flags, parse_run_fast

        args = ["run", *expand_bare_flags(args[1:])]
        opts = parse_run_fast(args[1:])
        if opts is not None:
            from pyvmm.runner import run_guest

            sys.exit(run_guest(opts))
    if args[:1] == ["restore"]:
        from pyvmm.options import RESTORE_OPTIONS, RestoreOptions, parse_run_fast

        opts = parse_run_fast(args[1:], RESTORE_OPTIONS, RestoreOptions)
        if opts is not None and opts.snapshot is not None:
            from pyvmm.restorer import restore_guest

            sys.exit(restore_guest(opts))
    from pyvmm.cli import app

    try:
        status = app(args=args, prog_name="pyvmm", standalone_mode=False)
    except Exception as e:
        # click's usage errors (bad flag, bad value) carry exit_code 2: print one line, not a panel.
        if not hasattr(e, "format_message"):
            raise
        message = e.format_message()
        if message:  # empty after "no arguments: here is the help"
            hint = " (see 'pyvmm --help')" if getattr(e, "exit_code", 1) == 2 else ""
            print(f"pyvmm: error: {message}{hint}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status or 0)


if __name__ == "__main__":
    main()
