"""The ``pyvmm`` command line (typer): ``run``, ``exec``, ``bench``, ``info``, ``sdk``, ``new``.

The console-script entry point is :func:`pyvmm.__main__.main`, which sends
plain ``pyvmm run`` invocations straight to :func:`pyvmm.runner.run_guest` so
a boot does not pay for importing typer (see :mod:`pyvmm.options`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pyvmm.numbers import ascii_int
from pyvmm.options import RESTORE_OPTIONS, RUN_OPTIONS, RunOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pyvmm: a KVM micro-VMM with a paravirtual hypercall ABI instead of emulated hardware.",
)

_SPECS = {spec.name: spec for spec in RUN_OPTIONS}


def _strict(parse):
    """*parse* (raising ValueError) as a typer parser: its message shown as is, without "Value error,"."""

    def parser(text):
        if not isinstance(text, str):
            return text  # typer passes the declared default through the parser too
        try:
            return parse(text)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None

    return parser


def _option(name: str, **kw):
    spec = _SPECS[name]
    if spec.type not in (str, bool):
        kw["parser"] = _strict(spec.type)  # the fast path's strict number parsers (pyvmm.numbers)
    return typer.Option(*spec.flags, help=spec.help, metavar=spec.metavar, **kw)


@app.command()
def run(
    guest: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at runtime
        typer.Argument(help="Guest ELF built against the pyvmm ABI (default: the bundled kernel).", metavar="GUEST"),
    ] = None,
    memory: Annotated[str, _option("memory")] = "64M",
    cmdline: Annotated[str, _option("cmdline")] = "",
    timeout: Annotated[Optional[float], _option("timeout")] = None,  # noqa: UP045
    vcpus: Annotated[int, _option("vcpus")] = 1,
    disk: Annotated[Optional[list[str]], _option("disk")] = None,  # noqa: UP045
    channel: Annotated[Optional[list[str]], _option("channel")] = None,  # noqa: UP045
    stats: Annotated[bool, _option("stats")] = False,
    stats_json: Annotated[Optional[str], _option("stats_json")] = None,  # noqa: UP045
    trace: Annotated[Optional[str], _option("trace")] = None,  # noqa: UP045
    trace_filter: Annotated[Optional[str], _option("trace_filter")] = None,  # noqa: UP045
    plugin: Annotated[Optional[list[str]], _option("plugin")] = None,  # noqa: UP045
    gdb: Annotated[Optional[str], _option("gdb")] = None,  # noqa: UP045
    gdb_wait: Annotated[bool, _option("gdb_wait")] = False,
    gdb_nowait: Annotated[bool, _option("gdb_nowait")] = False,
    no_seccomp: Annotated[bool, _option("no_seccomp")] = False,
    snapshot_dir: Annotated[Optional[str], _option("snapshot_dir")] = None,  # noqa: UP045
    snapshot_on: Annotated[Optional[str], _option("snapshot_on")] = None,  # noqa: UP045
    hw_api: Annotated[bool, _option("hw_api")] = False,
) -> None:
    """Boot a guest, stream its console, and exit with its exit code."""
    from pyvmm.runner import run_guest

    opts = RunOptions(
        guest,
        memory,
        cmdline,
        timeout,
        vcpus,
        disk=list(disk or ()),
        channel=list(channel or ()),
        stats=stats,
        stats_json=stats_json,
        trace=trace,
        trace_filter=trace_filter,
        plugin=list(plugin or ()),
        gdb=gdb,
        gdb_wait=gdb_wait,
        gdb_nowait=gdb_nowait,
        no_seccomp=no_seccomp,
        snapshot_dir=snapshot_dir,
        snapshot_on=snapshot_on,
        hw_api=hw_api,
    )
    raise typer.Exit(run_guest(opts))


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    program: Annotated[str, typer.Argument(help="A static x86-64 Linux program (a host path).", metavar="PROGRAM")],
    args: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="Its arguments (everything after PROGRAM).", metavar="[ARGS]..."),
    ] = None,
    memory: Annotated[str, _option("memory")] = "256M",
    timeout: Annotated[Optional[float], _option("timeout")] = None,  # noqa: UP045
    vcpus: Annotated[int, _option("vcpus")] = 1,
    stats: Annotated[
        bool, typer.Option("--stats", help="Print the Linux calls made and refused, and the hypercalls, to stderr.")
    ] = False,
    share: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--share",
            help="HOSTDIR[:ro|:rw]: the program's file system, seen as /; read-only by default.",
            metavar="HOSTDIR",
        ),
    ] = None,
    cwd: Annotated[str, typer.Option("--cwd", help="Working directory inside the share.", metavar="PATH")] = "/",
    env: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--env", help="K=V in the program's environment (repeatable; added to PATH and HOME).", metavar="K=V"
        ),
    ] = None,
    no_seccomp: Annotated[bool, _option("no_seccomp")] = False,
) -> None:
    """Run an unmodified static Linux program as a CPL3 task; exit with its status."""
    from pyvmm.linux.runner import ExecOptions, exec_program

    opts = ExecOptions(
        program,
        list(args or ()),
        memory=memory,
        timeout=timeout,
        vcpus=vcpus,
        stats=stats,
        share=share,
        cwd=cwd,
        env=list(env or ()),
        no_seccomp=no_seccomp,
    )
    raise typer.Exit(exec_program(opts))


_RESTORE = {spec.name: spec for spec in RESTORE_OPTIONS}


def _ropt(name: str, **kw):
    spec = _RESTORE[name]
    if spec.type not in (str, bool):
        kw["parser"] = _strict(spec.type)
    return typer.Option(*spec.flags, help=spec.help, metavar=spec.metavar, **kw)


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(help="A snapshot directory (docs/snapshot.md).", metavar="DIR")],
    memory: Annotated[Optional[str], _ropt("memory")] = None,  # noqa: UP045
    vcpus: Annotated[Optional[int], _ropt("vcpus")] = None,  # noqa: UP045
    timeout: Annotated[Optional[float], _ropt("timeout")] = None,  # noqa: UP045
    disk: Annotated[Optional[list[str]], _ropt("disk")] = None,  # noqa: UP045
    channel: Annotated[Optional[list[str]], _ropt("channel")] = None,  # noqa: UP045
    allow_changed_disk: Annotated[bool, _ropt("allow_changed_disk")] = False,
    clone_id: Annotated[Optional[int], _ropt("clone_id")] = None,  # noqa: UP045
    no_seccomp: Annotated[bool, _ropt("no_seccomp")] = False,
    snapshot_dir: Annotated[Optional[str], _ropt("snapshot_dir")] = None,  # noqa: UP045
    snapshot_on: Annotated[Optional[str], _ropt("snapshot_on")] = None,  # noqa: UP045
) -> None:
    """Resume a snapshotted VM where it was; exit statuses as for run."""
    from pyvmm.options import RestoreOptions
    from pyvmm.restorer import restore_guest

    opts = RestoreOptions(
        snapshot,
        memory,
        vcpus,
        timeout,
        disk=list(disk or ()),
        channel=list(channel or ()),
        allow_changed_disk=allow_changed_disk,
        clone_id=clone_id,
        no_seccomp=no_seccomp,
        snapshot_dir=snapshot_dir,
        snapshot_on=snapshot_on,
    )
    raise typer.Exit(restore_guest(opts))


@app.command()
def info() -> None:
    """Show the KVM API version and each capability pyvmm uses."""
    from pyvmm.info import print_info

    raise typer.Exit(print_info())


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Few iterations: a smoke run for CI (well under a minute).")
    ] = False,
    json_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--json", help="Write the results (and host details) as JSON.", metavar="FILE"),
    ] = None,
    plot: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--plot", help="Draw latency distributions (needs matplotlib: pyvmm[plot]).", metavar="FILE.png"),
    ] = None,
    only: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--only", help="Run only these classes (repeat or comma-separate; 'send' = send-*).", metavar="NAME"
        ),
    ] = None,
    iters: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--iters", help="Timed iterations per repetition.", metavar="N", parser=_strict(ascii_int)),
    ] = None,
    warmup: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--warmup", help="Untimed iterations first.", metavar="N", parser=_strict(ascii_int)),
    ] = None,
    reps: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--reps", help="Repetitions per class.", metavar="N", parser=_strict(ascii_int)),
    ] = None,
    list_classes: Annotated[bool, typer.Option("--list", help="List the benchmark classes and exit.")] = False,
    hw_api: Annotated[
        bool,
        typer.Option(
            "--hw-api",
            help="Compare the system-call API with the hardware API (LAPIC, UART), workload by workload.",
        ),
    ] = False,
) -> None:
    """Hypercall latency per class, with same-run baselines (C exit loop, in-kernel exit, syscall)."""
    from pyvmm.bench.cli import bench_main

    raise typer.Exit(
        bench_main(
            quick=quick,
            json_file=json_file,
            plot=plot,
            only=only,
            iters=iters,
            warmup=warmup,
            reps=reps,
            list_classes=list_classes,
            hw_api=hw_api,
        )
    )


@app.command()
def sdk(
    cflags: Annotated[bool, typer.Option("--cflags", help="Compiler flags (and the include directory).")] = False,
    ldflags: Annotated[bool, typer.Option("--ldflags", help="Linker flags (and the link script).")] = False,
    sources: Annotated[bool, typer.Option("--sources", help="The entry and C library sources to build in.")] = False,
    include: Annotated[bool, typer.Option("--include", help="The include directory.")] = False,
) -> None:
    """Print what gcc needs to build a guest against the ABI: the SDK shipped with pyvmm."""
    from pyvmm import sdk as guest_sdk

    words = []
    if cflags:
        words.append(guest_sdk.cflags())
    if ldflags:
        words.append(guest_sdk.ldflags())
    if sources:
        words.append(guest_sdk.sources())
    if include:
        words.append(guest_sdk.INCLUDE_DIR)
    if not words:
        words.append(f"{guest_sdk.SDK_DIR}  (give --cflags, --ldflags, --sources or --include)")
    print(" ".join(words))


@app.command()
def new(directory: Annotated[str, typer.Argument(help="Where to write the guest.", metavar="DIR")]) -> None:
    """Write a hello-world guest (hello.c and a Makefile using `pyvmm sdk`) into DIR."""
    from pyvmm import sdk as guest_sdk

    try:
        guest_sdk.new_project(directory)
    except guest_sdk.SdkError as e:
        print(f"pyvmm: error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(f"wrote {directory}/hello.c and {directory}/Makefile: make -C {directory} run")
