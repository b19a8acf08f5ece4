"""The public API (docs/api.md): its examples run as written, and the examples/ programs work."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import pyvmm

from .conftest import ROOT

pytestmark = pytest.mark.kvm

DOC = ROOT / "docs" / "api.md"
EXAMPLES = [block for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)]


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"api.md-{i}" for i in range(len(EXAMPLES))])
def test_docs_examples_run(code):
    exec(compile(code, str(DOC), "exec"), {})


def test_extension_errors_and_hooks():
    """An unexpected exception is -EIO, HypercallError its errno, unregistered numbers -ENOSYS;
    the hook sees every call with its result as the guest got it."""

    def boom(vcpu_id, args, memory):
        raise RuntimeError("a bug in the prototype")

    def refuse(vcpu_id, args, memory):
        raise pyvmm.HypercallError(pyvmm.Errno.EPERM)

    seen = []
    with pyvmm.VM(cmdline="test=ext", timeout=60) as vm:
        vm.hypercall(pyvmm.EXT_BASE + 1, boom)
        vm.hypercall(pyvmm.EXT_BASE + 5, refuse)
        vm.on("hypercall", lambda vcpu, nr, args, result, ns: seen.append((nr, result)))
        result = vm.run()
    out = vm.console_output.decode()
    assert result.exit_code == 0, out
    assert "registered=22" in out
    assert "ext 65: -5 buf=ping" in out
    assert "ext 69: -1 buf=ping" in out
    assert "ext 64 unregistered: -38" in out
    assert "ext beyond: -38" in out
    assert (pyvmm.EXT_BASE + 1, (1 << 64) - 5) in seen


def test_bad_registrations_are_one_line_errors():
    vm = pyvmm.VM()
    with pytest.raises(pyvmm.VmError, match="not in the extension range"):
        vm.hypercall(pyvmm.EXT_BASE - 1, lambda *a: 0)
    with pytest.raises(pyvmm.VmError, match="not in the extension range"):
        vm.hypercall(pyvmm.EXT_BASE + pyvmm.EXT_COUNT, lambda *a: 0)
    vm.hypercall(pyvmm.EXT_BASE, lambda *a: 0)
    with pytest.raises(pyvmm.VmError, match="registered twice"):
        vm.hypercall(pyvmm.EXT_BASE, lambda *a: 0)
    with pytest.raises(pyvmm.VmError, match=r"not a pyvmm\.Channel"):
        vm.add_channel(object())
    with pytest.raises(pyvmm.VmError, match=r"invalid size"):
        pyvmm.VM(memory="lots")
    vm.close()


def test_console_input_and_step_by_step():
    with pyvmm.VM(cmdline="test=consread", stdin=b"typed by the test\n") as vm:
        vm.start(timeout=60)
        result = vm.wait(timeout=60)
    assert result.exit_code == 0
    assert "typed by the test" in vm.console_output.decode()


@pytest.mark.parametrize("example", ["kv_channel.py", "ext_hypercall.py"])
def test_examples_run(example):
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    if example == "kv_channel.py":
        assert "request: get colour -> teal" in run.stdout
        assert "store: {'colour': 'teal'}" in run.stdout
    else:
        assert "ext 64: 12 buf=PING" in run.stdout


def test_a_broken_python_channel_is_eio_for_the_guest_not_a_crash(pyvmm_vm):
    """A channel whose recv has the wrong signature (a bug in the prototype): the guest's
    RECV gets -EIO, counted on the guard, and the VM runs on to its own exit."""

    class Broken(pyvmm.Channel):
        kind = pyvmm.ChannelKind.STREAM
        name = "kv"

        def send(self, data, offset):
            return len(data)

        def recv(self, size, offset):
            return b"x"[:size]  # slicing by a memoryview: TypeError

    guest = pyvmm_vm(cmdline="test=request msg=hi", channels=[Broken()], timeout=60)
    guest.expect("request: recv -> -5")
    assert guest.wait().reason is pyvmm.StopReason.SHUTDOWN


def test_before_and_exit_hooks_see_what_the_guest_did():
    """before_hypercall sees SHUTDOWN (which has no after); exit sees the triple fault."""
    from pyvmm.kvm.constants import ExitReason
    from pyvmm.paravirt.abi import Hypercall

    before, exits = [], []
    with pyvmm.VM(cmdline="exit=4") as vm:
        vm.on("before_hypercall", lambda vcpu, nr, args: before.append((nr, args[0])))
        assert vm.run(timeout=30).exit_code == 4
    assert before[-1] == (Hypercall.SHUTDOWN, 4)
    with pyvmm.VM(cmdline="test=crash") as vm:
        vm.on("exit", lambda vcpu, reason: exits.append(reason))
        result = vm.run(timeout=30)
    assert result.reason is pyvmm.StopReason.CRASH
    assert exits == [ExitReason.SHUTDOWN]
