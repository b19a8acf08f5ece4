"""pyvmm's pytest plugin (pytest11 entry point): the pyvmm_vm fixture and the kvm marker,
run as a user would, in a fresh pytest process on a test file of their own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT


def _pytest(path, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=path.parent if hasattr(path, "parent") else None,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.kvm
def test_the_example_test_file_passes():
    run = _pytest(ROOT / "examples" / "test_guest.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


def test_kvm_tests_are_skipped_with_the_reason_without_kvm():
    run = _pytest(ROOT / "examples" / "test_guest.py", env={"PYVMM_KVM_DEVICE": "/nonexistent/kvm"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 skipped" in run.stdout
    assert "KVM test skipped: /nonexistent/kvm is absent" in run.stdout


@pytest.mark.kvm
def test_a_failing_expect_reports_the_guests_console(tmp_path):
    test = tmp_path / "test_user.py"
    test.write_text(
        textwrap.dedent(
            """
            def test_never(pyvmm_vm):
                guest = pyvmm_vm(cmdline="test=consread", timeout=60)
                guest.expect("no such line", timeout=1)

            def test_after_the_stop(pyvmm_vm):
                guest = pyvmm_vm(cmdline="test=errno")
                assert guest.exit_code() == 0
                guest.expect("errno: ok")  # already there: found
                guest.expect("never printed")
            """
        )
    )
    run = _pytest(test, timeout=60)
    assert run.returncode == 1, run.stdout
    assert "2 failed" in run.stdout
    assert "1s passed before its console matched 'no such line'" in run.stdout
    assert "the guest stopped before its console matched 'never printed'" in run.stdout
    assert "pyvmm guest 0 console" in run.stdout and "consread: waiting" in run.stdout
