"""Hostile guests (guest-kernel/programs/hostile.c) on the real /dev/kvm: each gets its documented
errno, or the VM stops with the documented exit status and report; pyvmm itself never falls over.
See docs/abi.md, "Hostile guests"."""

from __future__ import annotations

import pytest

from .hostile import assert_host_intact, hostile, run_measured, skip_if_unsupported, steps

pytestmark = pytest.mark.kvm

EFAULT, E2BIG, EBUSY, EINVAL, ENOSYS = -14, -7, -16, -22, -38

# case -> (stdin for the guest, every step it must report with its value)
ERRNO_CASES = {
    "past-ram": (
        None,
        {
            "send-at-end": EFAULT,
            "send-straddling-end": EFAULT,
            "send-far": EFAULT,
            "recv-at-end": EFAULT,
            "info-at-end": EFAULT,
            "multicall-at-end": EFAULT,
            "vcpu_up-entry-at-end": EFAULT,
            "zero-length-at-end": 0,
            "zero-length-past-end": EFAULT,
        },
    ),
    "overflow": (
        None,
        {
            "ptr-wraps": EFAULT,
            "len-wraps": EFAULT,
            "ptr-max": EFAULT,
            "len-max": EFAULT,
            "len-2^63": EFAULT,
            "multicall-count-max": E2BIG,
            "info-ptr-wraps": EFAULT,
        },
    ),
    "lengths": (
        "0123456789",
        {
            "send-zero": 0,
            "recv-zero": 0,
            "send-zero-null": 0,
            "recv-rest-of-ram": 10,  # a huge length inside RAM: a partial transfer
            "recv-eof": 0,
            "len-ram-plus-one": EFAULT,
        },
    ),
    "numbers": (
        None,
        {
            **{f"nr-{nr:#x}": ENOSYS for nr in (18, 31, 48, 63, 64, 65, 1 << 32, 1 << 63, (1 << 64) - 1)},
            "multicall-unknown": 1,
            "multicall-unknown-result": ENOSYS,
        },
    ),
    "vmm-pages": (
        "abcdefgh",
        {
            "send-boot-info": 8,  # reading VMM-owned pages is allowed
            "send-page-table": 0,
            **{
                f"recv-{name}": EFAULT
                for name in (
                    "null-page",
                    "boot-info",
                    "cmdline",
                    "gdt",
                    "page-table-pool",
                    "pool-end",
                    "across-reserved-end",
                    "shared-page-overrun",
                    "page-table",
                )
            },
            "info-boot-info": EFAULT,
            "info-page-table": EFAULT,
            "multicall-boot-info": EFAULT,  # regression: results used to be written into the boot info
            "multicall-page-table": EFAULT,
            "recv-shared-page": 4,
            "boot-info-intact": 1,
            "page-table-intact": 1,
        },
    ),
}


@pytest.mark.parametrize("case", list(ERRNO_CASES))
def test_bad_arguments_get_documented_errnos(case):
    stdin, expected = ERRNO_CASES[case]
    run = hostile(case, input=stdin)
    assert_host_intact(run)
    assert steps(run) == expected, run.stdout
    assert "hostile: ok" in run.stdout
    assert run.returncode == 0, run


def test_reading_boot_info_sends_its_magic():
    run = hostile("vmm-pages", input="abcdefgh")
    assert "PVMMINFO" in run.stdout


# case -> (exit status, a fragment of the crash report or of the guest's own report)
STOP_CASES = {
    "outb": (125, "bad hypercall access (IO out port=0xf5 size=1"),
    "outw": (125, "bad hypercall access (IO out port=0xf5 size=2"),
    "inl": (125, "bad hypercall access (IO in port=0xf5 size=4"),
    "port-out": (125, "unhandled port I/O: IO out port=0x80 size=1 count=1 data=42"),
    "port-in": (125, "unhandled port I/O: IO in port=0x60 size=1"),
    "mmio-read": (125, "access outside guest RAM: MMIO read gpa=0xc0000000 len=8"),
    "mmio-write": (125, "access outside guest RAM: MMIO write gpa=0xc0000000 len=8 data=8877665544332211"),
    "triple": (125, "guest crashed on vCPU 0: triple fault"),
    # Faults the guest kernel catches and reports itself (exit 126).
    "ud": (126, "unhandled trap 6 error=0x0"),
    "write-boot-info": (126, "unhandled trap 14 error=0x3 rip=0x"),
    "write-page-table": (126, "unhandled trap 14 error=0x3 rip=0x"),
    "runaway": (126, "unhandled trap 14 error=0x10"),  # instruction fetch past the end of RAM
    "return": (255, None),  # start.S: returning from kmain shuts down with 255
}


@pytest.mark.parametrize("case", list(STOP_CASES))
def test_vm_stops_with_documented_status(case):
    status, fragment = STOP_CASES[case]
    run = hostile(case)
    assert_host_intact(run)
    assert run.returncode == status, run
    assert "came back" not in run.stdout and "went through" not in run.stdout
    if status == 125:
        assert fragment in run.stderr, run.stderr
        assert "rip=" in run.stderr and "code at rip" in run.stderr  # the crash report
    elif fragment is not None:
        assert fragment in run.stdout, run.stdout


def test_write_to_boot_info_faults_at_the_boot_info():
    run = hostile("write-boot-info")
    assert "cr2=0x1000" in run.stdout


def test_rep_outs_on_the_hypercall_port():
    """KVM reports a string OUT one dword per exit here (the PVM emulator) or several per exit
    (VT-x): each single dword is a hypercall, several in one exit a violation (exit 125)."""
    run = hostile("outsl")
    assert_host_intact(run)
    if run.returncode == 125:
        assert "bad hypercall access (IO out port=0xf5 size=4 count=2" in run.stderr
    else:
        assert run.returncode == 3 and "outsl came back" in run.stdout, run


@pytest.mark.parametrize("case", ["spin-cli"])
def test_loop_with_interrupts_off_is_stopped_by_timeout(case):
    run = hostile(case, "--timeout", "0.5", timeout=30)
    assert run.returncode == 124, run
    assert "--timeout 0.5s" in run.stderr
    assert_host_intact(run)


# -- the later ABI: each case probes its hypercall and skips while it answers -ENOSYS -------


def test_event_storm_coalesces_and_is_delivered():
    run = hostile("storm", timeout=120)
    skip_if_unsupported(run)
    assert_host_intact(run)
    got = steps(run)
    assert got["notify-cli-all-ok"] == 2000 and got["notify-sti-all-ok"] == 2000, run.stdout
    assert got["coalesced-pending"] == 1 and got["coalesced-handled"] == 1
    assert got["storm-handled-some"] == 1
    assert run.returncode == 0, run


def test_endless_event_storm_is_stopped_by_timeout_with_bounded_memory():
    short = run_measured("run", "--cmdline", "test=hostile case=storm-forever", "--timeout", "1", timeout=60)
    if "hostile: unsupported" in short.stdout:
        pytest.skip("this pyvmm lacks event channels")
    long = run_measured("run", "--cmdline", "test=hostile case=storm-forever", "--timeout", "4", timeout=60)
    for m in (short, long):
        assert m.returncode == 124, m
        assert "notifying myself forever" in m.stdout
        assert "Traceback" not in m.stderr
    assert short.max_rss_kib > 0 and long.max_rss_kib > 0  # measured
    # Four times the storm costs no more memory than one: nothing accumulates per event.
    assert long.max_rss_kib < short.max_rss_kib + 8 * 1024, (short.max_rss_kib, long.max_rss_kib)


def test_vcpu_up_of_invalid_or_running_vcpus():
    run = hostile("vcpu-up", "--vcpus", "2")
    skip_if_unsupported(run)
    assert_host_intact(run)
    assert steps(run) == {
        "id-max": EINVAL,
        "id-64": EINVAL,
        "id-2^32": EINVAL,
        "id-nr_vcpus": EINVAL,
        "self-running": EBUSY,
        "entry-past-ram": EFAULT,
        "entry-max": EFAULT,
        "stack-zero": EINVAL,
        "stack-past-ram": EINVAL,
        "start": 0,
        "again-1000-busy": 1000,
    }, run.stdout
    assert run.returncode == 0, run


def test_vcpu_up_at_a_garbage_entry_crashes_that_vcpu():
    run = hostile("vcpu-up-garbage", "--vcpus", "2", "--timeout", "30")
    skip_if_unsupported(run)
    assert_host_intact(run)
    assert run.returncode == 125, run
    # vCPU 1's triple fault may stop the VM before vCPU 0 prints what VCPU_UP returned.
    assert "starting vCPU 1 at the null page" in run.stdout
    assert "guest crashed on vCPU 1: triple fault" in run.stderr


def test_thousands_of_address_space_creates():
    run = hostile("as-storm", timeout=300)
    skip_if_unsupported(run)
    assert_host_intact(run)
    got = steps(run)
    assert got.get("all-destroyed") == 1 and got.get("same-capacity") == 1, run.stdout
    assert run.returncode == 0, run


def test_deadlines_of_2_to_the_64_do_not_kill_timers_or_block():
    """Regression (found by tests/test_fuzz_dispatcher.py): TIMER_SET(2**64-1) killed the timer
    thread and BLOCK(2**64-1) stopped the VM with an internal error (lock timeout overflow)."""
    run = hostile("huge-deadlines", "--vcpus", "2", "--timeout", "30")
    skip_if_unsupported(run)
    assert_host_intact(run)
    assert steps(run) == {
        "timer-max": 0,
        "timer-soon": 0,
        "timer-fired-while-running": 1,
        "start-notifier": 0,
        "block-max-woken": 0,
    }, run.stdout + run.stderr
    assert run.returncode == 0, run


def test_guest_that_garbles_its_page_table_pool_hurts_only_itself():
    """Regression (issue 10, item 9): a CPL0 guest that clears CR0.WP and writes garbage
    entries into its own page-table pool (claims on VMM pages, free donated frames, the
    kernel image, addresses outside RAM, tables pyvmm never made) made pyvmm trust them:
    a ``KeyError`` internal error, or arbitrary frames freed into the data-frame pool.
    pyvmm reads its own copy of the tables: every call works, and the data frames handed
    out afterwards are exactly the donated ones, each once."""
    run = hostile("wp-tables", "--timeout", "60")
    skip_if_unsupported(run)
    assert_host_intact(run)
    assert "garbled the tables of space" in run.stdout, run.stdout
    assert steps(run) == {
        "donate": 0,
        "map": 0,
        "lazy": 0,
        "faulted-in": 3,
        "unmap": 0,
        "protect": 0,
        "clone": 1,
        "destroy-clone": 0,
        "destroy": 0,
        "donate-unmapped-page": 0,
        "lazy-all": 0,
        "frames-served": 65,
        "then-enomem": -12,
        "frames-outside-donations": 0,
        "destroy-2": 0,
    }, run.stdout
    assert run.returncode == 0, run
