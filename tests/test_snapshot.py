"""Snapshot, restore and clone on the real /dev/kvm with the bundled guest (test=snap).

What each test checks is what the guest observably did: its console lines after
the restore, its exit status, the clone id and return value it printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, assert_one_line_error, pyvmm

pytestmark = pytest.mark.kvm


def _after(out: str, marker: str) -> list[str]:
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if marker in line:
            return lines[i:]
    raise AssertionError(f"{marker!r} not in {out!r}")


def test_guest_snapshot_restores_three_times_with_the_same_continuation(tmp_path):
    run = pyvmm("run", "--cmdline", "test=snap count=8 at=3", "--snapshot-dir", str(tmp_path))
    assert run.returncode == 0, run
    assert "snap: snapshot -> 0 clone=0 seed=set" in run.stdout  # the original: 0, like fork's parent
    assert "snap: done sum=140 clone=0 backwards=0" in run.stdout
    assert sorted(os.listdir(tmp_path)) == ["manifest.json", "memory.bin"]
    # Sparse: the 64 MiB file holds about what the guest touched.
    assert os.stat(tmp_path / "memory.bin").st_blocks * 512 < 4 << 20
    continuations = []
    for clone in (1, 2, 3):
        r = pyvmm("restore", str(tmp_path))
        assert r.returncode == 0, r
        assert "sum=0" not in r.stdout and "pyvmm guest kernel" not in r.stdout  # no reboot: it resumes
        rest = _after(r.stdout, "snap: snapshot ->")
        assert rest[0] == f"snap: snapshot -> {clone} clone={clone} seed=set"
        continuations.append([line.replace(f"clone={clone}", "clone=N") for line in rest[1:]])
        assert rest[-1] == f"snap: done sum=140 clone={clone} backwards=0"
    assert continuations[0] == continuations[1] == continuations[2]
    assert continuations[0][:4] == ["snap: 4 sum=30", "snap: 5 sum=55", "snap: 6 sum=91", "snap: 7 sum=140"]


def test_explicit_clone_id_reaches_the_guest(tmp_path):
    assert pyvmm("run", "--cmdline", "test=snap count=3 at=1", "--snapshot-dir", str(tmp_path)).returncode == 0
    r = pyvmm("restore", str(tmp_path), "--clone-id", "77")
    assert r.returncode == 0, r
    assert "snap: snapshot -> 77 clone=77 seed=set" in r.stdout


def test_snapshot_without_a_directory_is_enosys():
    run = pyvmm("run", "--cmdline", "test=snap count=3 at=1")
    assert run.returncode == 0, run
    assert "snap: snapshot -> -38 clone=0" in run.stdout


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pyvmm", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_line(proc: subprocess.Popen, fragment: str, seen: list[str]) -> None:
    while True:
        line = proc.stdout.readline()
        assert line, f"{fragment!r} never came: {seen}"
        seen.append(line.rstrip("\n"))
        if fragment in line:
            return


def test_host_signal_snapshots_a_running_guest_which_goes_on(tmp_path):
    proc = _popen(
        "run",
        "--cmdline",
        "test=snap mode=wait count=25 period_ms=40",
        "--snapshot-dir",
        str(tmp_path),
        "--snapshot-on",
        "SIGUSR1",
        "--timeout",
        "60",
    )
    seen: list[str] = []
    _wait_line(proc, "snap: tick 4 ", seen)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    seen += out.splitlines()
    assert proc.returncode == 0, (seen, err)  # SIGUSR1 snapshotted, it did not stop the VM
    assert "snap: done backwards=0" in seen
    assert "pyvmm: snapshot written to" in err
    r = pyvmm("restore", str(tmp_path))
    assert r.returncode == 0, r
    ticks = [line for line in r.stdout.splitlines() if line.startswith("snap: tick")]
    first = int(ticks[0].split()[2])
    assert 4 <= first < 25 and ticks[-1] == "snap: tick 24 clone=1"
    assert [int(t.split()[2]) for t in ticks] == list(range(first, 25))  # every tick once, in order
    assert "snap: done backwards=0" in r.stdout  # guest time never went back across the restore


def test_timer_armed_before_the_snapshot_fires_after_restore(tmp_path):
    run = pyvmm("run", "--cmdline", "test=snap mode=timer period_ms=300", "--snapshot-dir", str(tmp_path))
    assert run.returncode == 0, run
    assert "snap: timer fired, clone=0 backwards=0" in run.stdout
    r = pyvmm("restore", str(tmp_path), "--timeout", "30")
    assert r.returncode == 0, r
    assert "snap: snapshot -> 1" in r.stdout
    assert "snap: timer fired, clone=1 backwards=0" in r.stdout


def test_multi_vcpu_guest_snapshotted_mid_pingpong_resumes_with_counts_verified(tmp_path):
    proc = _popen(
        "run",
        "--vcpus",
        "2",
        "--cmdline",
        "test=pingpong rounds=3000",
        "--snapshot-dir",
        str(tmp_path),
        "--snapshot-on",
        "USR1",
        "--timeout",
        "120",
    )
    seen: list[str] = []
    _wait_line(proc, "cmdline:", seen)
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert "pyvmm: snapshot written to" in err, err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [v["started"] for v in manifest["vcpus"]] == [True, True], "snapshotted before vCPU 1 came up"
    r = pyvmm("restore", str(tmp_path), "--timeout", "120", timeout=150)
    assert r.returncode == 0, r
    assert "pingpong: 2 vcpus, 2 pairs x 3000 rounds, 12000 notifications" in r.stdout
    assert r.stdout.rstrip().endswith("ok")


# -- disks ---------------------------------------------------------------------------------


def _disk_snapshot(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"pyvmm disk " * 1000)
    snap = tmp_path / "snap"
    snap.mkdir()
    run = pyvmm("run", "--disk", str(disk), "--cmdline", "test=snap count=4 at=1", "--snapshot-dir", str(snap))
    assert run.returncode == 0, run
    return disk, snap


def test_a_disk_is_checked_at_restore(tmp_path):
    disk, snap = _disk_snapshot(tmp_path)
    assert pyvmm("restore", str(snap)).returncode == 0  # unchanged: fine
    with open(disk, "r+b") as f:
        f.write(b"X")
    assert_one_line_error(pyvmm("restore", str(snap)), "contents changed", "--allow-changed-disk")
    assert pyvmm("restore", str(snap), "--allow-changed-disk").returncode == 0
    other = tmp_path / "other.img"
    other.write_bytes(b"pyvmm disk " * 1000)
    assert pyvmm("restore", str(snap), "--disk", str(other)).returncode == 0  # a copy elsewhere: fine
    other.write_bytes(b"short")
    assert_one_line_error(pyvmm("restore", str(snap), "--disk", str(other)), "5 bytes", "11000")


# -- bad input: one line, exit 2, nothing half-restored ------------------------------------


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    assert pyvmm("run", "--cmdline", "test=snap count=3 at=1", "--snapshot-dir", str(d)).returncode == 0
    return d


def _copy(src, dst):
    dst.mkdir()
    for name in ("manifest.json", "memory.bin"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _rewrite_manifest(d, change):
    from pyvmm.snapshot.format import _canonical

    body = json.loads((d / "manifest.json").read_text())
    body.pop("sha256")
    change(body)
    import hashlib

    body["sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    (d / "manifest.json").write_text(json.dumps(body))


def test_bad_snapshots_are_one_line_errors(tmp_path, good_snapshot):
    assert_one_line_error(pyvmm("restore", str(tmp_path / "missing")), "no such snapshot directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(pyvmm("restore", str(empty)), "no manifest.json")

    truncated = _copy(good_snapshot, tmp_path / "truncated")
    os.truncate(truncated / "memory.bin", 1 << 20)
    assert_one_line_error(pyvmm("restore", str(truncated)), "truncated or replaced")

    corrupt_mem = _copy(good_snapshot, tmp_path / "corrupt-mem")
    manifest = json.loads((corrupt_mem / "manifest.json").read_text())
    first_page = manifest["memory"]["runs"][-1][0]
    with open(corrupt_mem / "memory.bin", "r+b") as f:
        f.seek(first_page * 4096 + 7)
        f.write(b"\xa5")
    assert_one_line_error(pyvmm("restore", str(corrupt_mem)), "CRC-32")

    corrupt = _copy(good_snapshot, tmp_path / "corrupt")
    raw = bytearray((corrupt / "manifest.json").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (corrupt / "manifest.json").write_bytes(bytes(raw))
    assert_one_line_error(pyvmm("restore", str(corrupt)), "corrupt snapshot manifest")

    half = _copy(good_snapshot, tmp_path / "half")
    (half / "manifest.json").write_bytes((good_snapshot / "manifest.json").read_bytes()[:5000])
    assert_one_line_error(pyvmm("restore", str(half)), "corrupt snapshot manifest")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"format": "firecracker", "version": 4}')
    assert_one_line_error(pyvmm("restore", str(foreign)), "not a pyvmm snapshot")

    old_abi = _copy(good_snapshot, tmp_path / "old-abi")
    _rewrite_manifest(old_abi, lambda b: b.update(abi_version=(1 << 16) | 1))
    assert_one_line_error(pyvmm("restore", str(old_abi)), "ABI 1.1", "1.3")

    from pyvmm.snapshot.format import VERSION

    new_format = _copy(good_snapshot, tmp_path / "newer")
    _rewrite_manifest(new_format, lambda b: b.update(version=VERSION + 1))
    assert_one_line_error(pyvmm("restore", str(new_format)), f"format version {VERSION + 1}")

    bad_state = _copy(good_snapshot, tmp_path / "bad-state")
    _rewrite_manifest(bad_state, lambda b: b["vcpus"][0]["state"].update(regs="00"))
    assert_one_line_error(pyvmm("restore", str(bad_state)), "malformed snapshot manifest")

    assert_one_line_error(pyvmm("restore", str(good_snapshot), "--vcpus", "2"), "1 vCPUs", "--vcpus asks 2")
    assert_one_line_error(pyvmm("restore", str(good_snapshot), "--memory", "128M"), "64 MiB", "128 MiB")
    # The good one still restores: none of the above changed it.
    assert pyvmm("restore", str(good_snapshot)).returncode == 0


def test_snapshot_options_errors(tmp_path):
    assert_one_line_error(pyvmm("run", "--snapshot-on", "SIGUSR1"), "--snapshot-on needs --snapshot-dir")
    assert_one_line_error(
        pyvmm("run", "--snapshot-on", "SIGKILL", "--snapshot-dir", str(tmp_path)), "not a signal pyvmm can take"
    )
    assert_one_line_error(pyvmm("run", "--snapshot-dir", str(tmp_path / "nope")), "no such directory")
    f = tmp_path / "file"
    f.write_text("")
    assert_one_line_error(pyvmm("run", "--snapshot-dir", str(f)), "not a directory")


def test_a_failed_snapshot_write_leaves_the_vm_running(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run = pyvmm("run", "--cmdline", "test=snap count=4 at=1", "--snapshot-dir", str(small))
        assert run.returncode == 0, run  # the VM went on to the end
        assert "snap: snapshot -> -28 clone=0" in run.stdout  # -ENOSPC for the guest
        assert "snap: done sum=14" in run.stdout
        assert "snapshot failed" in run.stderr and "No space left" in run.stderr
        assert os.listdir(small) == []  # nothing half-written left behind
    finally:
        subprocess.run(["umount", str(small)], check=False)


# -- the Python API: snapshot, reset in place, restore in process ---------------------------


def test_reset_loop_of_1000_gives_the_same_observable_state_each_time():
    import pyvmm

    with pyvmm.VM(cmdline="test=snap mode=dirty pages=16") as vm:
        first = vm.run(timeout=60)
        assert first.exit_code == 1, first  # the original: each of the 16 bytes went 0 -> 1
        dirty = set()
        for i in range(1000):
            vm.reset()
            r = vm.run(timeout=60)
            # Memory rolled back each time: had any of the 16 pages kept its write, the byte would be 2, 3...
            assert (r.reason, r.exit_code) == (first.reason, 1), (i, r)
            dirty.add(vm.resets.last_dirty)
        assert vm.resets.resets == 1000
        # Only what changed was put back: the 16 pages, the stack, and a few pyvmm wrote (boot info, events).
        assert min(dirty) >= 16 and max(dirty) < 64, dirty


def test_reset_rolls_back_console_visible_state_and_counts_clones():
    import pyvmm

    with pyvmm.VM(cmdline="test=snap count=5 at=2") as vm:
        assert vm.run(timeout=60).exit_code == 0
        assert b"snap: snapshot -> 0 clone=0" in vm.console_output
        outputs = []
        for n in (1, 2, 3):
            start = len(vm.console_output)
            vm.reset()
            assert vm.run(timeout=60).exit_code == 0
            out = vm.console_output[start:].decode()
            assert out.startswith(f"snap: snapshot -> {n} clone={n}"), out
            outputs.append(out.replace(f"-> {n} clone={n}", "-> N clone=N").replace(f"clone={n}", "clone=N"))
        assert outputs[0] == outputs[1] == outputs[2]
        assert "snap: 3 sum=14\nsnap: 4 sum=30\nsnap: done sum=30 clone=N backwards=0" in outputs[0]


def test_host_snapshot_through_the_api_and_restore_in_process(tmp_path):
    import pyvmm

    vm = pyvmm.VM(cmdline="test=snap mode=wait count=20 period_ms=30")
    vm.start(timeout=60)
    deadline = time.monotonic() + 30
    while b"snap: tick 3 " not in vm.console_output and time.monotonic() < deadline:
        time.sleep(0.01)
    report = vm.snapshot(tmp_path)
    assert report.pages > 0 and report.bytes_written == report.pages * 4096
    assert vm.wait(60).exit_code == 0  # the original went on to the end
    vm.close()
    with pyvmm.VM.from_snapshot(tmp_path) as clone:
        r = clone.run(timeout=60)
        assert r.exit_code == 0, clone.console_output
        out = clone.console_output.decode()
        assert "pyvmm guest kernel" not in out and "snap: tick 19 clone=1" in out
        assert "snap: done backwards=0" in out


def test_api_errors_are_vm_errors(tmp_path):
    import pyvmm

    with pyvmm.VM(cmdline="test=snap count=2 at=0") as vm:
        with pytest.raises(pyvmm.VmError, match="not built"):
            vm.reset()
        vm.run(timeout=60)
        with pytest.raises(pyvmm.VmError, match="running VM"):
            vm.snapshot(tmp_path)
    with pytest.raises(pyvmm.VmError, match=r"no manifest\.json"):
        pyvmm.VM.from_snapshot(tmp_path).run(timeout=10)
