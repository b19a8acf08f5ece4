"""`pyvmm bench` and `pyvmm run --stats` through the real CLI on the real /dev/kvm."""

from __future__ import annotations

import json

import pytest

from pyvmm.bench.classes import BASELINE_A, CLASSES, NULL, Group
from pyvmm.paravirt.dispatcher import Dispatcher

from .conftest import assert_one_line_error, pyvmm

pytestmark = pytest.mark.kvm


def test_quick_bench_produces_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    run = pyvmm("bench", "--quick", "--json", str(out), timeout=120)
    assert run.returncode == 0, run
    doc = json.loads(out.read_text())
    rows = {r["name"]: r for r in doc["results"]}
    assert set(rows) == {c.name for c in CLASSES}, "every registered class has a row"
    for cls in CLASSES:
        row = rows[cls.name]
        if "skipped" in row:
            # Only classes whose ABI feature this VMM does not offer yet may be skipped.
            assert cls.features, row
            assert "needs ABI feature" in row["skipped"], row
            continue
        assert row["median_ns"] > 0 and row["p99_ns"] >= row["median_ns"] and row["samples"] > 0, row
        if cls.name != "timer":  # under load a 200 us deadline may pass before TIMER_SET arrives (-ETIME)
            assert row["errors"] == 0, row
        if cls.ratio:
            assert row["ratio_to_c_baseline"] > 0, row
        if cls.bytes_per_op:
            assert row["throughput_gb_s"] > 0, row
        if cls.group is Group.PYVMM:
            assert row["ratio_to_null"] > 0, row
    for name in (BASELINE_A, "base-ioeventfd", "base-syscall-c", "base-syscall-py", "exit-kvm-run", "exit-pyvmm"):
        assert rows[name]["median_ns"] > 0, name
    assert rows[BASELINE_A]["ratio_to_c_baseline"] == 1.0
    assert rows[NULL]["ratio_to_null"] == 1.0
    # The address-space classes ran (this VMM offers ADDRESS_SPACES) and the fault is split.
    names = ("as-null", "as-switch", "as-map-unmap", "as-map-512", "as-map-512-range", "as-fault", "as-fault-vmm")
    for name in (*names, "as-syscall"):
        assert "skipped" not in rows[name], rows[name]
    for name in ("as-map-512", "as-map-512-range"):
        assert rows[name]["per"] == "page" and rows[name]["per_call_ns"] > 0
    split = doc["page_fault_split"]
    assert split["end_to_end_ns"] == pytest.approx(rows["as-fault"]["median_ns"], abs=1)
    assert split["vmm_share_ns"] == pytest.approx(rows["as-fault-vmm"]["median_ns"], abs=1)
    assert 0 < split["vmm_share_ns"] < split["end_to_end_ns"]  # the fault itself costs more than serving it
    assert split["cpl3_syscall_round_trip_ns"] == pytest.approx(rows["as-syscall"]["median_ns"], abs=1)
    for what in ("address-space switch", "page fault served", "map of 512 pages", "one-range map of 512 pages"):
        (target,) = [t for k, t in doc["targets"].items() if k.startswith(what)]
        assert target["value"] > 0 and target["met"] in (True, False), (what, target)
        assert what in run.stdout
    assert "x null" in run.stdout and "the VMM's share" in run.stdout
    # The in-kernel exit never reaches userspace: it must beat the userspace C loop.
    assert rows["base-ioeventfd"]["median_ns"] < rows[BASELINE_A]["median_ns"]
    assert doc["host"]["kvm_backend"] and doc["host"]["python"]
    # The terminal table and progress.
    assert "null hypercall / C baseline (a)" in run.stdout
    for group in (Group.PYVMM, Group.BASELINE, Group.FASTPATH, Group.SPLIT):
        assert f"-- {group.value}" in run.stdout
    assert "[1/" in run.stderr


def test_bench_only_runs_the_named_classes(tmp_path):
    out = tmp_path / "b.json"
    run = pyvmm("bench", "--quick", "--only", "send-1m", "--json", str(out), timeout=60)
    assert run.returncode == 0, run
    names = [r["name"] for r in json.loads(out.read_text())["results"]]
    assert names == ["send-1m", BASELINE_A]  # the baseline comes along for the ratio


def test_bench_address_space_classes_bring_null_along(tmp_path):
    out = tmp_path / "as.json"
    run = pyvmm("bench", "--quick", "--only", "as-switch", "--json", str(out), timeout=60)
    assert run.returncode == 0, run
    rows = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert list(rows) == [NULL, "as-switch", BASELINE_A]  # its target is a ratio to null
    assert rows["as-switch"]["errors"] == 0
    assert rows["as-switch"]["ratio_to_null"] == round(rows["as-switch"]["median_ns"] / rows[NULL]["median_ns"], 3)


def test_bench_unknown_class_is_a_one_line_error():
    assert_one_line_error(pyvmm("bench", "--only", "nonesuch"), "no benchmark class 'nonesuch'")


def test_bench_plot_without_matplotlib_says_so(tmp_path):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert_one_line_error(pyvmm("bench", "--quick", "--plot", str(tmp_path / "p.png")), "matplotlib")
    else:
        run = pyvmm("bench", "--quick", "--only", "null", "--plot", str(tmp_path / "p.png"), timeout=60)
        assert run.returncode == 0, run
        assert (tmp_path / "p.png").stat().st_size > 0


def _rows(table: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}


def test_run_stats_counts_what_the_errno_guest_did(tmp_path):
    """test=errno makes a known set of hypercalls: 13 SENDs (4 fail), NULL, an unknown
    small and an unknown huge number (both -ENOSYS), and SHUTDOWN."""
    out = tmp_path / "stats.json"
    run = pyvmm("run", "--stats", "--stats-json", str(out), "--cmdline", "test=errno")
    assert run.returncode == 0, run
    assert "errno: ok" in run.stdout
    rows = _rows(run.stderr)
    # Numbers past the table (the ABI's and the extension range) share one row.
    beyond = f"nr>={Dispatcher.SIZE}"
    expected = {"SEND": (13, 4), "NULL": (1, 0), "SHUTDOWN": (1, 0), "nr50": (1, 1), beyond: (1, 1)}
    for name, (count, errors) in expected.items():
        assert rows[name][:2] == [str(count), str(errors)], (name, rows.get(name))
    assert rows["IO"][0] == "17"  # every hypercall is one IO exit
    doc = json.loads(out.read_text())
    assert {k: (v["count"], v["errors"]) for k, v in doc["hypercalls"].items()} == expected
    io = doc["exits"]["IO"]
    assert io["count"] == 17 and io["kvm_run"]["min_ns"] > 0 and io["vmm"]["min_ns"] > 0


def test_run_without_stats_prints_no_table():
    run = pyvmm("run", "--cmdline", "test=errno")
    assert run.returncode == 0 and run.stderr == "", run
