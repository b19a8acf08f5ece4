"""User errors: one clear line on stderr, exit status 2, never a traceback."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from .conftest import ROOT, Run, assert_one_line_error, pyvmm


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--bogus"], "No such option: --bogus"),
        (["run", "--memory", "12X"], "--memory"),
        (["run", "--memory", "1M"], "--memory must be between"),
        (["run", "--memory", "3M"], "--memory"),
        (["run", "--vcpus", "zero"], "--vcpus"),
        (["run", "--vcpus", "0"], "--vcpus must be between"),
        (["run", "--timeout", "-1"], "--timeout"),
        (["run", "a.elf", "b.elf"], "unexpected extra argument"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_flags(args, fragment):
    assert_one_line_error(pyvmm(*args), fragment)


def test_missing_guest_file(tmp_path):
    assert_one_line_error(pyvmm("run", str(tmp_path / "nope.elf")), "no such file")


def test_directory_as_guest(tmp_path):
    assert_one_line_error(pyvmm("run", str(tmp_path)), "is a directory")


def test_not_an_elf(tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_text("not an elf")
    assert_one_line_error(pyvmm("run", str(bad)), "not an ELF file")


def test_truncated_bundled_guest(tmp_path, guest_kernel):
    cut = tmp_path / "cut.elf"
    cut.write_bytes(guest_kernel.read_bytes()[:200])
    assert_one_line_error(pyvmm("run", str(cut)), "truncated")


def test_missing_kvm_device():
    run = pyvmm("run", env={"PYVMM_KVM_DEVICE": "/nonexistent/kvm"})
    assert_one_line_error(run, "KVM is not available")


def test_not_a_kvm_device(tmp_path):
    fake = tmp_path / "kvm"
    fake.write_text("")
    assert_one_line_error(pyvmm("run", env={"PYVMM_KVM_DEVICE": str(fake)}), "KVM_GET_API_VERSION")


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_kvm_permission_denied(tmp_path):
    fake = tmp_path / "kvm"
    fake.write_text("")
    fake.chmod(0)
    assert_one_line_error(pyvmm("run", env={"PYVMM_KVM_DEVICE": str(fake)}), "kvm")


def test_missing_gcc_is_one_line(tmp_path):
    """With no gcc on PATH and no cached build, the error says what to install."""
    run = pyvmm("run", env={"PATH": str(tmp_path), "PYVMM_CACHE_DIR": str(tmp_path / "cache")})
    assert_one_line_error(run, "gcc is needed")


# -- hostile host-side input (issue 6) -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0", "--memory must be between"),
        ("-1", "--memory: invalid size"),
        ("64.5M", "--memory: invalid size"),
        ("", "--memory: invalid size"),
        ("65M", "multiple of 2 MiB"),
        ("1T", "--memory must be between"),
        ("99999999999999999999G", "--memory must be between"),
    ],
)
def test_bad_memory_values(value, fragment):
    assert_one_line_error(pyvmm("run", "--memory", value), fragment)


@pytest.mark.parametrize("value", ["65", "-1", "1.5", "99999999999999999999", ""])
def test_bad_vcpus_values(value):
    assert_one_line_error(pyvmm("run", "--vcpus", value), "--vcpus")


@pytest.mark.parametrize("value", ["0", "nan", "-inf"])
def test_bad_timeout_values(value):
    assert_one_line_error(pyvmm("run", "--timeout", value), "--timeout")


def test_fifo_as_guest_does_not_hang(tmp_path):
    fifo = tmp_path / "guest.fifo"
    os.mkfifo(fifo)
    assert_one_line_error(pyvmm("run", str(fifo), timeout=20), "not a regular file")


def test_endless_device_as_guest_is_refused_before_reading():
    assert_one_line_error(pyvmm("run", "/dev/zero", timeout=20), "/dev/zero: not a regular file")


def test_unreadable_guest_even_for_root():
    """Reading /proc/self/mem at offset 0 fails with EIO whoever we are: an unreadable regular file."""
    assert_one_line_error(pyvmm("run", "/proc/self/mem"), "cannot read (Input/output error)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions: see the /proc/self/mem test")
def test_guest_without_read_permission(tmp_path, guest_kernel):
    elf = tmp_path / "g.elf"
    elf.write_bytes(guest_kernel.read_bytes())
    elf.chmod(0)
    assert_one_line_error(pyvmm("run", str(elf)), "Permission denied")


def test_huge_sparse_guest_file_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.elf"
    with open(big, "wb") as f:
        f.truncate(2 << 30)
    assert_one_line_error(pyvmm("run", str(big), timeout=20), "too large for a guest ELF")


def test_kvm_device_that_is_not_kvm():
    assert_one_line_error(pyvmm("run", env={"PYVMM_KVM_DEVICE": "/dev/null"}), "KVM_GET_API_VERSION")


def test_kvm_device_that_is_a_directory(tmp_path):
    assert_one_line_error(pyvmm("run", env={"PYVMM_KVM_DEVICE": str(tmp_path)}), "Is a directory")


@pytest.mark.kvm
def test_more_memory_than_the_host_can_map():
    """64 GiB is allowed by the option but more than this host can map: one line, not a traceback."""
    run = pyvmm("run", "--memory", "64G", "--cmdline", "exit=7")
    if run.returncode == 7:
        pytest.skip("this host maps 64 GiB of guest RAM")
    assert_one_line_error(run, "--memory", "cannot map guest RAM")


@pytest.mark.kvm
@pytest.mark.parametrize("limit", [5, 6, 7])
def test_out_of_file_descriptors_is_one_line(limit):
    """A 'busy' host: RLIMIT_NOFILE so low that KVM or the vCPU mapping gets EMFILE."""

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "pyvmm", "run", "--cmdline", "exit=5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=low_fd_limit,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    if run.returncode == 5 and limit >= 7:
        # Enough descriptors after all (pyvmm needs 6 once its imports are done): it just runs.
        assert "cmdline: exit=5" in run.stdout and run.stderr == "", run
        return
    assert_one_line_error(run, "Too many open files")
