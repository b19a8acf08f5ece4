"""Fuzz the REAL hypercall dispatcher with every device kind configured (console, disk,
stream, null sink); random hypercall numbers, registers and guest memory.

Two profiles: ``services``, the real handlers, devices and guest memory over the narrow
services without KVM (tests/support/services_vm.py), and ``kvm``, a Machine built on
/dev/kvm. Every call must return a u64 that is a non-negative result or a documented
negative errno, and raise nothing but GuestExit (SHUTDOWN). The calling vCPU is vCPU 0,
started, as it is when a real guest makes the call.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvmm.devices.spec import DiskSpec, StreamSpec
from pyvmm.machine import Machine, MachineConfig
from pyvmm.paravirt.abi import Errno, Hypercall, Layout, MulticallEntry
from pyvmm.paravirt.dispatcher import GuestExit

from .fuzz import fuzz_settings, report
from .support import services_vm

MEMORY = 16 << 20
U64 = (1 << 64) - 1
ERRNOS = {int(e) for e in Errno}
#: A BLOCK that finds nothing pending sleeps, as documented: the waker plays the event after this.
WAKER_PERIOD_S = 0.01


def _kvm_machine(guest_kernel, tmp, null_out, null_in) -> Machine:
    disk = tmp / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    channels = (DiskSpec("disk0", str(disk)), StreamSpec("link", str(tmp / "link.sock"), True))
    m = Machine(
        MachineConfig(kernel=guest_kernel, memory=MEMORY, console_fd=null_out, channels=channels, null_sink=True)
    )
    m.console.in_fd = null_in  # RECV on the console reads end of input, never the test's stdin
    m.vcpus[0].start(lambda vcpu: None)  # the caller: started, as a real guest's vCPU is
    return m


@pytest.fixture(scope="module", params=["services", pytest.param("kvm", marks=pytest.mark.kvm)])
def machine(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    null_out = os.open(os.devnull, os.O_WRONLY)
    null_in = os.open(os.devnull, os.O_RDONLY)
    if request.param == "kvm":
        m = _kvm_machine(request.getfixturevalue("guest_kernel"), tmp, null_out, null_in)
    else:
        m = services_vm.build(str(tmp), memory=MEMORY)
    stop = threading.Event()
    waker = threading.Thread(target=_waker, args=(m, stop), name="fuzz-waker", daemon=True)
    waker.start()
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: _thread_errors.append(
        f"{args.thread.name}: {args.exc_type.__name__}: {args.exc_value}"
    )
    try:
        yield m
        stop.set()
        waker.join()
        m.close()  # stops the timer thread: it must not have died before
    finally:
        threading.excepthook = previous_hook
        os.close(null_out)
        os.close(null_in)
    report(f"dispatcher-{request.param}", _count["cases"], **{k: v for k, v in _count.items() if k != "cases"})
    assert not _thread_errors, _thread_errors


def _waker(machine, stop: threading.Event) -> None:
    """Raise vCPU 0's upcall whenever a fuzzed BLOCK sleeps (nothing else would ever wake it)."""
    ctx = machine.vcpus[0]
    while not stop.wait(WAKER_PERIOD_S):
        if ctx.parker.parked:
            machine.events.shared.vcpu[0].upcall_pending = 1
            if ctx.parker.unpark():
                _count["woken"] += 1


def _u64(values) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(values), st.integers(0, U64))


#: Register values that hit the edges: RAM ends, VMM-owned pages, wrap-around, sign bits.
EDGES = [
    0,
    1,
    2,
    7,
    8,
    0x1000,
    Layout.BOOT_INFO,
    Layout.CMDLINE,
    Layout.SHARED_PAGE,
    Layout.SHARED_PAGE + 0xFF8,
    Layout.PAGE_TABLE_POOL,
    Layout.RESERVED_END - 8,
    Layout.RESERVED_END,
    MEMORY // 2,
    MEMORY - 56,
    MEMORY - 8,
    MEMORY - 1,
    MEMORY,
    MEMORY + 1,
    16 << 20,
    1 << 31,
    1 << 32,
    1 << 47,
    1 << 63,
    U64 - 0xFFF,
    U64 - 7,
    U64,
]
numbers = st.one_of(st.sampled_from([int(h) for h in Hypercall]), st.integers(0, 70), st.integers(0, U64))
registers = _u64(EDGES)
#: Guest memory the guest may write: the shared page and RAM above the reserved pages.
memory_writes = st.lists(
    st.tuples(
        st.one_of(
            st.integers(Layout.SHARED_PAGE, Layout.SHARED_PAGE + 0xFFF),
            st.integers(Layout.RESERVED_END, MEMORY - 1),
            st.sampled_from([MEMORY // 2, MEMORY - 56]),
        ),
        st.binary(min_size=1, max_size=256),
    ),
    max_size=3,
)


def _multicall_blob(draw_entries) -> bytes:
    out = b""
    for nr, args in draw_entries:
        e = MulticallEntry(nr=nr)
        for i, a in enumerate(args):
            e.args[i] = a
        out += bytes(e)
    return out


multicall_arrays = st.lists(
    st.tuples(numbers, st.lists(registers, min_size=5, max_size=5)), min_size=1, max_size=8
).map(_multicall_blob)

#: Exceptions that escaped a pyvmm thread (timers, watchers): each one is a bug.
_thread_errors: list[str] = []
_count = {"cases": 0, "shutdown": 0, "errno": 0, "ok": 0, "woken": 0}


def _valid(result: int) -> bool:
    if not 0 <= result <= U64:
        return False
    if result < 1 << 63:
        return True
    return (-(result - (1 << 64))) in ERRNOS


def _dispatch(machine, nr: int, args: list[int]) -> int | None:
    try:
        return machine.dispatcher.dispatch(machine.vcpus[0], nr, *args)
    except GuestExit as e:
        assert 0 <= e.code <= 255
        _count["shutdown"] += 1
        return None


def _check(machine, nr: int, args: list[int], writes) -> None:
    mem = machine.memory
    for gpa, data in writes:
        mem.write(gpa, data[: MEMORY - gpa])
    # Usually one upcall is pending, so a fuzzed BLOCK returns at once; when a fuzzed write
    # into the shared page has cleared it, the waker plays the event.
    machine.events.shared.vcpu[0].upcall_pending = 1
    _count["cases"] += 1
    result = _dispatch(machine, nr, args)
    if result is None:
        return
    assert _valid(result), f"hypercall {nr:#x}{tuple(hex(a) for a in args)} returned {result:#x}"
    assert not _thread_errors, f"after hypercall {nr:#x}{tuple(hex(a) for a in args)}: {_thread_errors}"
    _count["errno" if result >= 1 << 63 else "ok"] += 1


@fuzz_settings()
@given(nr=numbers, args=st.lists(registers, min_size=5, max_size=5), writes=memory_writes)
def test_random_hypercalls_get_a_valid_result(machine, nr, args, writes):
    _check(machine, nr, args, writes)


@fuzz_settings()
@given(blob=multicall_arrays, where=st.sampled_from([MEMORY // 2, MEMORY - 8 * 56, Layout.SHARED_PAGE]))
def test_random_multicall_batches(machine, blob, where):
    count = len(blob) // 56
    _check(machine, Hypercall.MULTICALL, [where, count, 0, 0, 0], [(where, blob)])
