"""ABI v1 events, time and SMP on /dev/kvm, checked by what the guest observed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, pyvmm

pytestmark = pytest.mark.kvm


def test_pingpong_between_every_pair_of_8_vcpus():
    run = pyvmm("run", "--vcpus", "8", "--cmdline", "test=pingpong rounds=3", "--timeout", "120", timeout=150)
    assert run.returncode == 0, run
    # 8*7 ordered pairs, each 3 pings and 3 pongs, every count verified by vCPU 0.
    assert "pingpong: 8 vcpus, 56 pairs x 3 rounds, 336 notifications" in run.stdout
    assert run.stdout.rstrip().endswith("ok")


def test_timer_tick_loop_and_past_deadline():
    run = pyvmm("run", "--cmdline", "test=timer ticks=20 period_us=1000", "--timeout", "60")
    assert run.returncode == 0, run
    assert "timer: past deadline -> -62" in run.stdout  # -ETIME
    m = re.search(
        r"timer: ticks=(\d+) period_us=1000 late_calls=\d+ lateness_us min=(\d+) median=(\d+) max=(\d+)", run.stdout
    )
    assert m and int(m.group(1)) == 20, run.stdout


def test_block_times_out_and_is_woken_by_notify():
    run = pyvmm("run", "--vcpus", "2", "--cmdline", "test=block", "--timeout", "60")
    assert run.returncode == 0, run
    assert "block: timeout -> -62 after >= 3 ms" in run.stdout
    assert "block: yield -> 0" in run.stdout
    assert "block: vcpu1 woken by notify" in run.stdout
    assert "block: ok" in run.stdout


def test_multicall_gives_a_result_per_entry():
    run = pyvmm("run", "--cmdline", "test=multicall")
    assert run.returncode == 0, run
    assert "multicall: sent from inside a batch" in run.stdout
    assert "multicall: ran 4: results 0 36 -38 clock-ok" in run.stdout


def test_bad_ports_vcpus_clocks_and_batches_get_errnos():
    run = pyvmm("run", "--vcpus", "2", "--cmdline", "test=smperr")
    assert run.returncode == 0, run
    expected = {
        "vcpu_up-bad-id": -22,
        "vcpu_up-running": -16,
        "vcpu_up-entry-outside-ram": -14,
        "vcpu_up-ok": 0,
        "vcpu_up-twice": -16,
        "notify-port0": -22,
        "notify-unbound": -22,
        "notify-huge": -22,
        "bind-bad-vcpu": -22,
        "bind-bad-kind": -22,
        "bind-bad-virq": -22,
        "bind-bad-channel": -9,
        "bind-virq-twice": -16,
        "notify-virq-port": -22,
        "close-unbound": -22,
        "close-ok": 0,
        "timer-past": -62,
        "timer-cancel": 0,
        "clock-bad": -22,
        "multicall-too-many": -7,
        "multicall-bad-pointer": -14,
    }
    for name, value in expected.items():
        assert f"smperr {name}: {value}\n" in run.stdout, name


@pytest.mark.parametrize("mode", ["sti", "check"])
def test_an_event_raised_with_interrupts_off_is_delivered_after_sti(mode):
    # Every round's timer event reaches the handler once the guest takes interrupts again:
    # through the interrupt-window exit alone (sti), or with evt_irq_enable's check.
    run = pyvmm("run", "--cmdline", f"test=irqwin mode={mode} rounds=8", timeout=60)
    assert run.returncode == 0, run
    line = re.search(r"irqwin: mode=(\w+) rounds=(\d+) lost=(\d+) after_sti_us min=\d+ median=(\d+)", run.stdout)
    assert line and line.group(1) == mode and line.group(2) == "8" and line.group(3) == "0", run.stdout


def test_each_vcpu_knows_its_id():
    run = pyvmm("run", "--vcpus", "4", "--cmdline", "test=smpid")
    assert run.returncode == 0, run
    for c in range(4):
        assert f"smpid: vcpu {c} says {c}" in run.stdout


def test_parallel_hypercalls_on_two_vcpus():
    run = pyvmm("run", "--vcpus", "2", "--cmdline", "test=hcloop iters=2000", "--timeout", "60")
    assert run.returncode == 0, run
    assert "hcloop: vcpus=2 hypercalls=4000" in run.stdout


def test_hlt_waits_for_an_event_and_a_dead_hlt_is_a_crash():
    run = pyvmm("run", "--cmdline", "test=halt", "--timeout", "30")
    assert "halt: woken from HLT by the timer" in run.stdout
    assert "still here" not in run.stdout
    assert run.returncode == 125, run
    assert "HLT with interrupts disabled and nothing to wake the vCPU" in run.stderr


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_host_signal_stops_every_vcpu_cleanly(sig, status):
    """Four vCPUs ping-ponging forever; a signal stops them all and pyvmm exits with 128+N."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyvmm", "run", "--vcpus", "4", "--cmdline", "test=pingpong rounds=1000000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert proc.poll() is None
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # never leave a runaway VM behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, (out, err)
    assert f"pyvmm: stopped by {sig.name}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("loop", ["native", "python"])
def test_both_run_loops_serve_the_same_guests(loop):
    """The compiled loop (default) and the Python fallback (no gcc) behave the same."""
    env = {"PYVMM_LOOP": loop}
    run = pyvmm("run", "--cmdline", "test=errno", env=env)
    assert run.returncode == 0 and "errno: ok" in run.stdout, run
    run = pyvmm("run", "--vcpus", "3", "--cmdline", "test=pingpong rounds=2", "--timeout", "60", env=env)
    assert run.returncode == 0 and "pingpong: 3 vcpus, 6 pairs x 2 rounds, 24 notifications" in run.stdout, run
    run = pyvmm("run", "--cmdline", "test=halt", "--timeout", "30", env=env)
    assert run.returncode == 125 and "woken from HLT by the timer" in run.stdout, run
