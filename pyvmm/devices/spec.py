"""Channel specifications from the command line (``--disk``, ``--channel``): pure parsing.

Unit-tested without KVM; :func:`pyvmm.devices.open_device` turns a spec into a
device. Every mistake is a :class:`SpecError` whose message is the one line the user sees.
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

from pyvmm.paravirt import abi

#: Longest ``sun_path`` Linux accepts, without the NUL.
UNIX_PATH_MAX = 107
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)


class SpecError(ValueError):
    """A malformed ``--disk`` / ``--channel`` value."""


class DiskSpec(NamedTuple):
    name: str  # disk0, disk1... in command-line order
    path: str


class StreamSpec(NamedTuple):
    name: str
    path: str  # the Unix socket
    server: bool  # listen (True) or connect (False)


ChannelSpec = DiskSpec | StreamSpec


def parse_channel(text: str) -> StreamSpec:
    """Parse ``NAME=unix:PATH`` or ``NAME=unix:PATH,server``."""
    name, eq, target = text.partition("=")
    if not eq or not name:
        raise SpecError(f"--channel {text!r}: expected NAME=unix:PATH[,server]")
    check_name(name, "--channel")
    transport, colon, rest = target.partition(":")
    if not colon or transport != "unix":
        raise SpecError(f"--channel {text!r}: only unix:PATH is supported (expected NAME=unix:PATH[,server])")
    path, _, options = rest.partition(",")
    if not path:
        raise SpecError(f"--channel {text!r}: the socket path is empty")
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise SpecError(f"--channel {name}: socket path longer than {UNIX_PATH_MAX} bytes")
    server = False
    for opt in filter(None, options.split(",")):
        if opt != "server":
            raise SpecError(f"--channel {text!r}: unknown option {opt!r} (the only one is 'server')")
        server = True
    return StreamSpec(name, path, server)


def check_name(name: str, flag: str) -> None:
    # The characters first: a name from non-UTF-8 argv bytes (surrogateescape'd) cannot be encoded.
    if not _NAME_RE.fullmatch(name):
        raise SpecError(f"{flag} {name!r}: channel names use only letters, digits, '_', '.' and '-'")
    if len(name) >= abi.CHANNEL_NAME_LEN:  # ASCII by now: characters are bytes
        raise SpecError(f"{flag} {name!r}: channel names are at most {abi.CHANNEL_NAME_LEN - 1} bytes")


def _file_identity(path: str) -> object:
    """What makes two paths one disk: the inode (hard links, symlinks), or the device a
    block-device node names; the resolved path when it cannot be stat'ed (opening reports why)."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    if stat.S_ISBLK(st.st_mode):
        return ("block", st.st_rdev)
    return (st.st_dev, st.st_ino)


def build_specs(disks: list[str], channels: list[str]) -> tuple[ChannelSpec, ...]:
    """All channel specs in handle order (disks first, then streams), checked together."""
    specs: list[ChannelSpec] = []
    for i, path in enumerate(disks):
        if not path:
            raise SpecError("--disk: the path is empty")
        specs.append(DiskSpec(f"disk{i}", path))
    specs += [parse_channel(text) for text in channels]
    seen_files: dict[object, str] = {}
    for path in disks:
        key = _file_identity(path)
        if key in seen_files:
            raise SpecError(f"--disk {path}: the same file is given twice (also as {seen_files[key]})")
        seen_files[key] = path
    seen = {"console"}
    for spec in specs:
        if spec.name in seen:
            raise SpecError(f"--channel {spec.name}: the channel name is already used")
        seen.add(spec.name)
    if len(specs) + 1 > abi.MAX_CHANNELS:  # + the console
        raise SpecError(f"too many channels: at most {abi.MAX_CHANNELS - 1} --disk and --channel in all")
    return tuple(specs)
