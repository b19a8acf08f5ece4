"""A --plugin: extension hypercall EXT_BASE upper-cases the guest's buffer, and a hook
counts every hypercall, printed when the VM stops.

Run: pyvmm run --plugin examples/plugin_shout.py --cmdline test=ext
"""

from __future__ import annotations

import sys

import pyvmm

calls = 0


def shout(vcpu_id: int, args: tuple, memory) -> int:
    buf, length = args[0], args[1]
    memory.write(buf, memory.read(buf, length).upper())  # checked: a bad pointer is -EFAULT
    return sum(args[2:])


def count(vcpu_id, nr, args, result, ns) -> None:
    global calls
    calls += 1


def report(result) -> None:
    # stderr was opened before the seccomp filter: writing to it is allowed, opening files is not.
    print(f"plugin_shout: {calls} hypercalls, exit {result.exit_code}", file=sys.stderr)


def setup(vm) -> None:
    vm.hypercall(pyvmm.EXT_BASE, shout)
    vm.on("hypercall", count)
    vm.on("stop", report)
