"""The ``pyvmm`` command line (typer): ``run``, ``bench``, ``info``, ``sdk``, ``new``.

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
from pyvmm.options import RUN_OPTIONS, RunOptions

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
    )
    raise typer.Exit(run_guest(opts))


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
