"""The ``pyvmm`` command line (typer): ``run``, ``info``.

The console-script entry point is :func:`pyvmm.__main__.main`, which sends
plain ``pyvmm run`` invocations straight to :func:`pyvmm.runner.run_guest` so
a boot does not pay for importing typer (see :mod:`pyvmm.options`).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pyvmm.options import RUN_OPTIONS, RunOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pyvmm: a KVM micro-VMM with a paravirtual hypercall ABI instead of emulated hardware.",
)

_SPECS = {spec.name: spec for spec in RUN_OPTIONS}


def _option(name: str, **kw):
    spec = _SPECS[name]
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
        no_seccomp=no_seccomp,
    )
    raise typer.Exit(run_guest(opts))


@app.command()
def info() -> None:
    """Show the KVM API version and each capability pyvmm uses."""
    from pyvmm.info import print_info

    raise typer.Exit(print_info())
