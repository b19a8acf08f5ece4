"""Options of ``pyvmm run``, declared once for both command-line parsers.

``pyvmm run`` is parsed by a small fast path when the arguments are plain
(typer's import alone costs about 90 ms, most of a boot); anything else,
``--help`` and every mistake included, goes to the typer app, which owns
help and error messages. Both read :data:`RUN_OPTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from pyvmm.numbers import ascii_float, ascii_int


class OptionSpec(NamedTuple):
    name: str  # RunOptions field
    flags: tuple[str, ...]
    type: type | Callable[[str], object]  # a callable raising ValueError for a bad value
    help: str
    metavar: str = ""
    repeat: bool = False  # may be given more than once: the values collect in a list
    #: The value of a bare flag (``--trace`` alone means ``--trace=-``); None: a value is required.
    bare: str | None = None


RUN_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("memory", ("--memory", "-m"), str, "Guest RAM, e.g. 64M or 1G.", "SIZE"),
    OptionSpec("cmdline", ("--cmdline", "-c"), str, "Command line passed to the guest.", "TEXT"),
    OptionSpec(
        "timeout", ("--timeout", "-t"), ascii_float, "Stop the guest after this many seconds (exit 124).", "SECS"
    ),
    OptionSpec("vcpus", ("--vcpus",), ascii_int, "Number of vCPUs.", "N"),
    OptionSpec(
        "disk",
        ("--disk",),
        str,
        "A host file as a block channel (disk0, disk1... in order); its size is fixed. Repeatable.",
        "PATH",
        repeat=True,
    ),
    OptionSpec(
        "channel",
        ("--channel",),
        str,
        "A stream channel to another VM over a Unix socket: NAME=unix:PATH (connect) or "
        "NAME=unix:PATH,server (listen). Repeatable.",
        "SPEC",
        repeat=True,
    ),
    OptionSpec(
        "stats", ("--stats",), bool, "Time every exit; print per-exit-reason and per-hypercall counts to stderr."
    ),
    OptionSpec("stats_json", ("--stats-json",), str, "Time every exit; write the counts as JSON to FILE.", "FILE"),
    OptionSpec(
        "trace",
        ("--trace",),
        str,
        "Trace every hypercall, strace-like: --trace=FILE, or --trace alone for stderr.",
        "FILE",
        bare="-",
    ),
    OptionSpec(
        "trace_filter",
        ("--trace-filter",),
        str,
        "Trace only these hypercalls (comma-separated names, e.g. send,recv, or numbers).",
        "NAMES",
    ),
    OptionSpec(
        "plugin",
        ("--plugin",),
        str,
        "Load FILE.py and call its setup(vm): hypercalls, channels and hooks in Python. Repeatable.",
        "FILE.py",
        repeat=True,
    ),
    OptionSpec(
        "gdb",
        ("--gdb",),
        str,
        "Serve gdb's remote protocol on HOST:PORT or unix:PATH (gdb: target remote HOST:PORT).",
        "ADDR",
    ),
    OptionSpec(
        "gdb_wait",
        ("--gdb-wait",),
        bool,
        "With --gdb: stop before the first instruction until gdb attaches (the default).",
    ),
    OptionSpec("gdb_nowait", ("--gdb-nowait",), bool, "With --gdb: run at once; gdb may attach later."),
    OptionSpec(
        "no_seccomp",
        ("--no-seccomp",),
        bool,
        "Do not confine pyvmm with a seccomp allow-list once the VM is built.",
    ),
    OptionSpec(
        "snapshot_dir",
        ("--snapshot-dir",),
        str,
        "Where snapshots go (the guest's SNAPSHOT call, --snapshot-on); an existing directory.",
        "DIR",
    ),
    OptionSpec(
        "snapshot_on",
        ("--snapshot-on",),
        str,
        "Snapshot the running VM into --snapshot-dir when this signal arrives (e.g. SIGUSR1).",
        "SIGNAL",
    ),
    OptionSpec(
        "hw_api",
        ("--hw-api",),
        bool,
        "Add emulated hardware: KVM's in-kernel local APIC (x2APIC, TSC-deadline timer) and a "
        "16550 UART at COM1, the guest's console (docs/hwapi.md).",
    ),
)

#: ``pyvmm restore DIR``: what a restored VM may be given (docs/snapshot.md).
RESTORE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("memory", ("--memory", "-m"), str, "Refuse unless the snapshot has this much RAM.", "SIZE"),
    OptionSpec("vcpus", ("--vcpus",), ascii_int, "Refuse unless the snapshot has this many vCPUs.", "N"),
    OptionSpec(
        "timeout", ("--timeout", "-t"), ascii_float, "Stop the guest after this many seconds (exit 124).", "SECS"
    ),
    OptionSpec(
        "disk",
        ("--disk",),
        str,
        "The snapshot's disks, in order, at new paths (all or none). Repeatable.",
        "PATH",
        repeat=True,
    ),
    OptionSpec(
        "channel",
        ("--channel",),
        str,
        "Reattach the snapshot's stream NAME: NAME=unix:PATH[,server] (others report -ECONNRESET). Repeatable.",
        "SPEC",
        repeat=True,
    ),
    OptionSpec("allow_changed_disk", ("--allow-changed-disk",), bool, "Restore even if a disk's contents changed."),
    OptionSpec(
        "clone_id", ("--clone-id",), ascii_int, "The clone id the guest sees (default: 1, 2, 3... per snapshot).", "N"
    ),
    OptionSpec("no_seccomp", ("--no-seccomp",), bool, "Do not confine pyvmm with a seccomp allow-list."),
    OptionSpec("snapshot_dir", ("--snapshot-dir",), str, "Where the restored VM's own snapshots go.", "DIR"),
    OptionSpec("snapshot_on", ("--snapshot-on",), str, "Snapshot into --snapshot-dir on this signal.", "SIGNAL"),
)


@dataclass
class RunOptions:
    guest: str | None = None
    memory: str = "64M"
    cmdline: str = ""
    timeout: float | None = None
    vcpus: int = 1
    disk: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    stats: bool = False
    stats_json: str | None = None
    trace: str | None = None
    trace_filter: str | None = None
    plugin: list[str] = field(default_factory=list)
    gdb: str | None = None
    gdb_wait: bool = False
    gdb_nowait: bool = False
    no_seccomp: bool = False
    snapshot_dir: str | None = None
    snapshot_on: str | None = None
    hw_api: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class RestoreOptions:
    snapshot: str | None = None
    memory: str | None = None
    vcpus: int | None = None
    timeout: float | None = None
    disk: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    allow_changed_disk: bool = False
    clone_id: int | None = None
    no_seccomp: bool = False
    snapshot_dir: str | None = None
    snapshot_on: str | None = None


def expand_bare_flags(args: list[str]) -> list[str]:
    """``--trace`` alone becomes ``--trace=-``, so both parsers see a flag with a value."""
    bare = {flag: spec.bare for spec in RUN_OPTIONS if spec.bare is not None for flag in spec.flags}
    return [f"{arg}={bare[arg]}" if arg in bare else arg for arg in args]


def parse_run_fast(args: list[str], specs: tuple[OptionSpec, ...] = RUN_OPTIONS, options=RunOptions):
    """Parse plain ``run`` (or, with *specs* and *options*, ``restore``) arguments into an
    *options* object; None means "let typer handle it"."""
    by_flag = {flag: spec for spec in specs for flag in spec.flags}
    opts = options()
    positional = "guest" if options is RunOptions else "snapshot"
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flag, eq, value = arg.partition("=")
            spec = by_flag.get(flag)
            if spec is None:
                return None
            if spec.type is bool:
                if eq:
                    return None  # typer reports "--stats takes no value"
                setattr(opts, spec.name, True)
                i += 1
                continue
            if not eq:
                if i + 1 >= len(args):
                    return None
                i += 1
                value = args[i]
            try:
                typed = spec.type(value)
            except ValueError:
                return None
            if spec.repeat:
                getattr(opts, spec.name).append(typed)
            else:
                setattr(opts, spec.name, typed)
        elif getattr(opts, positional) is None:
            setattr(opts, positional, arg)
        else:
            return None
        i += 1
    return opts
