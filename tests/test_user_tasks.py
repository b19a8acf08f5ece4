"""CPL3 user tasks in VMM-managed address spaces, on the real /dev/kvm with the bundled kernel."""

from __future__ import annotations

import os
import re
import threading

import pytest

from .conftest import pyvmm

pytestmark = pytest.mark.kvm


def _space_stats(stderr: str) -> dict[int, dict[str, int]]:
    """``--stats`` lines ``as N ...: key=value ...`` -> {N: {key: value}}."""
    out = {}
    for m in re.finditer(r"^\s+as (\d+)[^:]*: (.*)$", stderr, re.M):
        out[int(m.group(1))] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def test_two_user_tasks_isolated_in_their_own_spaces():
    run = pyvmm("run", "--cmdline", "test=utasks")
    out = run.stdout
    assert run.returncode == 0, run
    assert "task 1: hello from CPL3" in out and "task 2: hello from CPL3" in out
    # Both tasks use the same heap addresses; each saw its own values across the switches.
    assert "task 1: heap intact after the switch" in out and "task 2: heap intact after the switch" in out
    assert re.search(r"task 1 exit 1, task 2 exit 2; faults served: heap 4\+4", out)
    # Reading the other task's page, kernel memory, and writing its own text: each reported, not served.
    assert "page fault: read at 0x8020000000 (not present, user mode)" in out
    assert "task 3 (peek-other): killed" in out
    assert "page fault: read at 0x200000 (protection, user mode)" in out
    assert "task 4 (peek-kernel): killed" in out
    assert "page fault: write at 0x8000400000 (protection, user mode)" in out
    assert "task 5 (poke-text): killed" in out
    assert "it should have been stopped" not in out
    assert out.rstrip().endswith("utasks: ok")


@pytest.mark.parametrize("pages", [5, 40])
def test_demand_paging_serves_one_fault_per_page(pages):
    run = pyvmm("run", "--stats", "--cmdline", f"test=demand n={pages}")
    assert run.returncode == 0, run
    m = re.search(r"faults forwarded: heap (\d+), stack (\d+), other (\d+)", run.stdout)
    heap, stack, other = map(int, m.groups())
    assert (heap, other) == (pages, 0)  # N pages touched twice -> N heap faults, no more
    assert stack >= 1  # the stack is demand-paged too
    (space,) = _space_stats(run.stderr).values()
    assert space["demand_zero"] == heap + stack  # every forwarded fault served demand-zero
    assert space["spurious"] == 0 and space["refused"] == 0 and space["cow_copy"] == 0


def test_protect_then_write_is_reported():
    run = pyvmm("run", "--stats", "--cmdline", "test=asprot")
    assert run.returncode == 0, run
    assert "heap page now read-only (mprotect 0), reads 1, writing it" in run.stdout
    assert "page fault: write at 0x8010000000 (protection, user mode)" in run.stdout
    assert "task 1 (protect): killed" in run.stdout
    assert _space_stats(run.stderr)[1]["refused"] == 1


def test_fork_clone_copy_on_write():
    run = pyvmm("run", "--stats", "--cmdline", "test=cow")
    assert run.returncode == 0, run
    assert "cow parent: heap 300 stack 301" in run.stdout
    assert "cow child: heap 200 stack 201" in run.stdout
    stats = _space_stats(run.stderr)
    assert len(stats) == 2
    copies = sum(s["cow_copy"] for s in stats.values())
    reuses = sum(s["cow_reuse"] for s in stats.values())
    assert copies == 2 and reuses == 2  # heap and stack: the first writer copies, the last sharer keeps the frame


def test_every_bad_request_gets_its_errno_and_the_host_stays_intact():
    run = pyvmm("run", "--cmdline", "test=aserrno", timeout=120)
    checks = re.findall(r"^aserrno ([\w-]+): got (-?\d+) want (-?\d+)", run.stdout, re.M)
    assert len(checks) >= 45, run.stdout
    wrong = [c for c in checks if c[1] != c[2]]
    assert not wrong, wrong
    names = {c[0] for c in checks}
    for needed in ("map-page-table-writable", "map-outside-ram", "switch-destroyed", "destroy-active"):
        assert needed in names
    assert "aserrno: ok" in run.stdout and run.returncode == 0, run
    assert "Traceback" not in run.stderr


def test_host_side_pager_serves_a_range(guest_kernel):
    from pyvmm.machine import Machine, MachineConfig
    from pyvmm.paravirt.abi import AS_USER_BASE

    pager_va = AS_USER_BASE + 0x3000_0000  # USER_PAGER in guest-kernel/include/usys.h
    calls = []

    def pager(handle: int, va: int) -> bytes:
        calls.append((handle, va))
        return b"hello from the host pager\0"

    r, w = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        with Machine(MachineConfig(kernel=guest_kernel, cmdline="test=pager", console_fd=w, timeout=60)) as m:
            m.address_spaces.add_pager(pager_va, 4096, pager)
            result = m.run()
            stats = m.address_spaces.stats()
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    out = b"".join(chunks).decode()
    assert result.exit_code == 0, out
    assert "pager page says: hello from the host pager" in out
    assert calls == [(1, pager_va)]
    assert stats[1].faults["pager"] == 1


def test_without_a_pager_the_fault_is_refused():
    run = pyvmm("run", "--cmdline", "test=pager")
    assert run.returncode == 1, run
    assert "page fault: read at 0x8030000000 (not present, user mode)" in run.stdout
    assert "pager: task killed" in run.stdout
