"""``--disk`` / ``--channel`` parsing and the fast parser's repeatable flags (pure logic, no KVM)."""

from __future__ import annotations

import pytest

from pyvmm.devices.spec import DiskSpec, SpecError, StreamSpec, build_specs, parse_channel
from pyvmm.options import RUN_OPTIONS, parse_run_fast


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("link=unix:/tmp/s", StreamSpec("link", "/tmp/s", server=False)),
        ("link=unix:/tmp/s,server", StreamSpec("link", "/tmp/s", server=True)),
        ("a-b_c.1=unix:rel/path", StreamSpec("a-b_c.1", "rel/path", server=False)),
        ("x=unix:/p,server,", StreamSpec("x", "/p", server=True)),
    ],
)
def test_parse_channel(text, want):
    assert parse_channel(text) == want


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("link", "expected NAME=unix:PATH"),
        ("=unix:/tmp/s", "expected NAME=unix:PATH"),
        ("link=tcp:1.2.3.4:5", "only unix:PATH"),
        ("link=/tmp/s", "only unix:PATH"),
        ("link=unix:", "socket path is empty"),
        ("link=unix:,server", "socket path is empty"),
        ("link=unix:/tmp/s,client", "unknown option 'client'"),
        ("bad name=unix:/tmp/s", "letters, digits"),
        ("x" * 24 + "=unix:/tmp/s", "at most 23 bytes"),
        ("link=unix:/" + "p" * 107, "longer than 107 bytes"),
    ],
)
def test_bad_channel_specs(text, fragment):
    with pytest.raises(SpecError) as e:
        parse_channel(text)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_build_specs_orders_disks_then_streams():
    specs = build_specs(["a.img", "b.img"], ["link=unix:/s", "up=unix:/u,server"])
    assert specs == (
        DiskSpec("disk0", "a.img"),
        DiskSpec("disk1", "b.img"),
        StreamSpec("link", "/s", False),
        StreamSpec("up", "/u", True),
    )


@pytest.mark.parametrize(
    ("disks", "channels", "fragment"),
    [
        ([], ["link=unix:/a", "link=unix:/b"], "already used"),
        ([], ["console=unix:/a"], "already used"),
        (["a.img"], ["disk0=unix:/a"], "already used"),
        ([""], [], "--disk: the path is empty"),
        (["/tmp/a.img", "/tmp/../tmp/a.img"], [], "the same file is given twice"),
        ([f"d{i}" for i in range(10)], [f"c{i}=unix:/c{i}" for i in range(6)], "too many channels"),
    ],
)
def test_build_specs_rejects(disks, channels, fragment):
    with pytest.raises(SpecError, match=fragment):
        build_specs(disks, channels)


def test_fifteen_channels_fit():
    assert len(build_specs([f"d{i}" for i in range(9)], [f"c{i}=unix:/c{i}" for i in range(6)])) == 15


def test_fast_parser_collects_repeatable_flags():
    opts = parse_run_fast(["--disk", "a.img", "--disk=b.img", "--channel", "l=unix:/s,server", "-m", "128M"])
    assert opts is not None
    assert opts.disk == ["a.img", "b.img"]
    assert opts.channel == ["l=unix:/s,server"]
    assert opts.memory == "128M"
    assert parse_run_fast([]).disk == []  # a fresh list each time, not a shared default
    assert parse_run_fast(["--disk"]) is None  # a missing value goes to typer for the error


def test_both_parsers_read_one_table():
    from pyvmm import cli

    flags = {flag for spec in RUN_OPTIONS for flag in spec.flags}
    assert {"--disk", "--channel"} <= flags
    params = {p.name: p for p in cli.typer.main.get_command(cli.app).commands["run"].params}
    for spec in RUN_OPTIONS:
        assert set(params[spec.name].opts) == set(spec.flags)
        assert params[spec.name].multiple == spec.repeat
