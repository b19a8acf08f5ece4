"""``--trace``: one decoded line per hypercall, to a file or stderr; off, it costs nothing."""

from __future__ import annotations

import os
import re

import pytest

from pyvmm.paravirt.abi import EventKind, Hypercall, Prot, errno_result
from pyvmm.trace import TraceError, Tracer, format_result, parse_filter

from .conftest import assert_one_line_error, pyvmm

LINE = re.compile(r"^\d+\.\d{6} \[(\d+)\] (\S+?)\((.*)\) = (\S+)( <[\d.]+us>)?$")


def _tracer(names=None, only=None):
    lines = []
    names = names or {0: "console", 1: "disk0"}
    return Tracer(lines.append, names.get, only, clock=iter(range(0, 10**12, 1000)).__next__), lines


def test_lines_decode_arguments_by_the_calls_signature():
    t, lines = _tracer()
    t.after(0, Hypercall.SEND, (1, 0x203000, 13, 512, 0), 13, 4100)
    t.after(1, Hypercall.RECV, (7, 0x1000, 8, 0, 0), errno_result(9), 900)
    t.after(0, Hypercall.AS_MAP, (3, 0x80_0000_0000, 0x400000, 4096, Prot.READ | Prot.USER), 0, 10)
    t.after(0, Hypercall.EVENT_BIND, (EventKind.CHANNEL, 0, 0, 0, 0), 5, 10)
    t.after(2, 64, (0x203000, 4, 3, 4, 5), 12, 10)
    t.before(0, Hypercall.SHUTDOWN, (3, 0, 0, 0, 0))
    assert [LINE.match(line).group(2, 3, 4) for line in lines] == [
        ("SEND", "disk0, buf=0x203000, len=13, offset=512", "13"),
        ("RECV", "handle=7, buf=0x1000, len=8, offset=0", "-EBADF"),
        ("AS_MAP", "handle=3, va=0x8000000000, gpa=0x400000, len=4096, prot=READ|USER", "0"),
        ("EVENT_BIND", "kind=CHANNEL, target=console, arg=0", "5"),
        ("ext64", "0x203000, 4, 3, 4, 5", "12"),
        ("SHUTDOWN", "code=3", "?"),
    ]
    assert lines[0].startswith("0.000001 [0] ") and lines[0].endswith("<4.1us>\n")
    assert LINE.match(lines[1]).group(1) == "1"


def test_filter_and_results():
    only = parse_filter("send, NULL,64")
    assert only == {Hypercall.SEND, Hypercall.NULL, 64}
    t, lines = _tracer(only=only)
    t.after(0, Hypercall.RECV, (0, 0, 0, 0, 0), 0, 1)
    t.after(0, Hypercall.NULL, (0, 0, 0, 0, 0), 0, 1)
    assert len(lines) == 1 and " NULL() = 0 " in lines[0]
    assert format_result(errno_result(38)) == "-ENOSYS"
    assert format_result(errno_result(4000)) == "-4000"
    assert format_result(1 << 40) == hex(1 << 40)
    for bad in ("sned", ",", ""):
        with pytest.raises(TraceError, match="--trace-filter"):
            parse_filter(bad)


@pytest.mark.kvm
def test_trace_file_of_a_real_guest(tmp_path):
    trace = tmp_path / "trace.txt"
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 65536)
    run = pyvmm("run", "--cmdline", "test=errno", f"--trace={trace}", "--disk", str(disk))
    assert run.returncode == 0, run
    assert "errno: ok" in run.stdout and " = " not in run.stdout  # the trace is not the console
    lines = trace.read_text().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert "SEND(handle=99, buf=" in text and "= -EBADF" in text
    assert re.search(r"nr50\(0, 0, 0, 0, 0\) = -ENOSYS", text)
    assert "NULL() = 0" in text
    assert re.search(r"SEND\(console, buf=0x[0-9a-f]+, len=\d+, offset=0\) = \d+", text)
    assert lines[-1].endswith("SHUTDOWN(code=0) = ?")
    # One line per call the guest made: the count --stats reports (which does not count
    # numbers past the dispatcher's table, like test=errno's 0xdeadbeef).
    stats = pyvmm("run", "--cmdline", "test=errno", "--stats", "--disk", str(disk))
    counts = dict(kv.split("=") for kv in stats.stderr.split("hypercalls: ")[1].splitlines()[0].split())
    assert len(lines) - text.count("nr3735928559(") == sum(int(n) for n in counts.values())


@pytest.mark.kvm
def test_trace_to_stderr_with_a_filter():
    run = pyvmm("run", "--cmdline", "test=errno", "--trace", "--trace-filter", "null,shutdown")
    assert run.returncode == 0, run
    traced = [line for line in run.stderr.splitlines() if LINE.match(line)]
    assert [LINE.match(line).group(2) for line in traced] == ["NULL", "SHUTDOWN"], run.stderr


@pytest.mark.kvm
def test_trace_mistakes_are_one_line(tmp_path):
    assert_one_line_error(pyvmm("run", "--trace=/nonexistent/dir/t.txt"), "--trace", "/nonexistent/dir/t.txt")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(pyvmm("run", f"--trace={fifo}", timeout=20), "--trace", "fifo")
    assert_one_line_error(pyvmm("run", "--trace", "--trace-filter", "sned"), "no hypercall named 'sned'")
    assert_one_line_error(pyvmm("run", "--trace-filter", "send"), "--trace-filter needs --trace")
