"""A hypercall written in Python: the guest's test=ext calls every announced extension number
with (buffer, 4, 3, 4, 5); this one upper-cases the buffer and returns the sum of the rest.

Run: python examples/ext_hypercall.py
"""

from __future__ import annotations

import pyvmm


def shout(vcpu_id: int, args: tuple, memory) -> int:
    buf, length = args[0], args[1]
    memory.write(buf, memory.read(buf, length).upper())  # checked: a bad pointer is -EFAULT
    return sum(args[2:])


def main() -> int:
    with pyvmm.VM(cmdline="test=ext", timeout=60) as vm:
        vm.hypercall(pyvmm.EXT_BASE, shout)
        result = vm.run()
    print(vm.console_output.decode(), end="")
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
