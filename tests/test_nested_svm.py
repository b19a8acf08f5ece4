"""scripts/nested_svm.py's pure parts: the initramfs archive and the console parser.

The nested run itself (QEMU TCG, minutes) is run by hand or by .ci/run's report step.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .support.scripts import load_script

nested = load_script("nested_svm")
kit = load_script("nestedkit")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
def test_newc_archive_is_read_by_cpio(tmp_path):
    archive = kit.newc_archive(
        [
            kit.Entry("bin", kit.DIR),
            kit.Entry("bin/hello", kit.EXEC, b"#!/bin/sh\necho hi\n", mtime=1_700_000_000),
            kit.Entry("odd", kit.FILE, b"x"),
            kit.Entry("link", kit.LINK, b"bin/hello"),
        ]
    )
    listing = subprocess.run(["cpio", "-it"], input=archive, capture_output=True, check=True).stdout.split()
    assert listing == [b"bin", b"bin/hello", b"odd", b"link"]
    subprocess.run(["cpio", "-id", "--quiet", "--preserve-modification-time"], input=archive, cwd=tmp_path, check=True)
    hello = tmp_path / "bin" / "hello"
    assert hello.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert hello.stat().st_mode & 0o777 == 0o755
    assert hello.stat().st_mtime == 1_700_000_000
    assert (tmp_path / "link").readlink().as_posix() == "bin/hello"


def test_newc_archive_layout():
    archive = kit.newc_archive([kit.Entry("a", kit.FILE, b"12345")])
    assert archive.startswith(b"070701") and len(archive) % 4 == 0
    assert b"a\0" in archive and b"12345" in archive and b"TRAILER!!!\0" in archive


def test_console_lines_become_outcomes():
    out = nested.Outcome()
    for line in (
        "NESTED: kvm Y",
        "NESTED: booted 5.6",
        "NESTED: file tests/test_x.py start 6.0",
        "tests/test_x.py::test_one PASSED",
        "tests/test_x.py::test_two[a-b] FAILED",
        "NESTED: file tests/test_x.py exit 1 16.5",
        "NESTED: file run-1 start 17.0",
        "irqwin: median=5",
        "[  200.1] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [python:123]",
        "NESTED: file run-1 exit 0 18.0",
    ):
        nested.parse_line(line, out, 0.0)
    assert out.kvm and out.booted
    assert out.files == {"tests/test_x.py": 1, "run-1": 0}
    assert out.file_seconds["tests/test_x.py"] == pytest.approx(10.5)
    assert out.tests == {"tests/test_x.py::test_one": "PASSED", "tests/test_x.py::test_two[a-b]": "FAILED"}
    assert out.run_output["run-1"][0] == "irqwin: median=5"
    # A wedge that still prints: counted, and the file's start is on the host clock, which
    # the watchdog holds against --timeout-per-file + --grace.
    assert out.lockups == 1
    assert out.current_since > 0


def test_report_fails_on_a_failed_test_and_a_wedge(capsys):
    out = nested.Outcome(booted=True, kvm=True, files={"t.py": 0, "w.py": None, "run-1": 124})
    out.tests = {"t.py::a": "PASSED"}
    assert nested.report(out, ["t.py", "run-1"], 1.0)
    out.wedged = ["w.py"]
    assert not nested.report(out, ["t.py", "w.py", "run-1"], 1.0)
    printed = capsys.readouterr().out
    assert "FAIL w.py: the nested kernel wedged" in printed and "INFO run-1: exit 124" in printed
