"""Testing a guest with pyvmm's pytest plugin (installed with pyvmm: nothing to configure).

Run: python -m pytest examples/test_guest.py
"""

from __future__ import annotations

import pytest

import pyvmm

pytestmark = pytest.mark.kvm  # skipped, with the reason, where /dev/kvm is missing


def test_the_guest_echoes_console_input(pyvmm_vm):
    guest = pyvmm_vm(cmdline="test=consread", timeout=60)
    guest.expect("consread: waiting")  # it asked, found nothing yet (-EAGAIN), and waits
    guest.send("hello guest\n")
    guest.expect(r"got 'hello guest")
    guest.close_input()
    guest.expect(r"end of input after (\d+) bytes")
    assert guest.exit_code() == 0


def test_a_python_hypercall_the_guest_calls(pyvmm_vm):
    calls = []

    def record(vcpu_id, args, memory):
        calls.append(memory.read(args[0], args[1]))
        return 42

    guest = pyvmm_vm(cmdline="test=ext", hypercalls={pyvmm.EXT_BASE: record})
    match = guest.expect(r"ext 64: (\d+) buf=(\w+)")
    assert match.groups() == ("42", "ping")
    assert guest.wait().reason is pyvmm.StopReason.SHUTDOWN
    assert calls == [b"ping"]
