"""User errors: one clear line on stderr, exit status 2, never a traceback."""

from __future__ import annotations

import os

import pytest

from .conftest import assert_one_line_error, pyvmm


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
