"""Pure logic of the benchmark statistics and the exit metrics (no KVM)."""

from __future__ import annotations

import pytest

from pyvmm.bench.classes import BY_NAME, CLASSES
from pyvmm.bench.report import fault_split, targets
from pyvmm.bench.run import BenchError, Result, apply_ratios, select
from pyvmm.bench.stats import Distribution, median, quantile
from pyvmm.metrics import INTERRUPTED, OUT_OF_RANGE, Aggregate, Metrics, add, new_agg
from pyvmm.paravirt.abi import Feature, Hypercall


def test_quantile_interpolates_between_ranks():
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([5], 0.99) == 5
    values = list(range(1, 101))  # 1..100
    assert quantile(values, 0.0) == 1 and quantile(values, 1.0) == 100
    assert quantile(values, 0.99) == pytest.approx(99.01)
    assert median([9, 1, 5]) == 5


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_quantile_rejects_bad_q(q):
    with pytest.raises(ValueError):
        quantile([1, 2], q)


def test_quantile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_distribution_summarises_and_splits_repetitions():
    samples = [10.0] * 100 + [20.0] * 99 + [1000.0]  # rep 1: all 10, rep 2: mostly 20
    d = Distribution.of(samples, reps=2)
    assert d.count == 200
    assert d.median == 15.0
    assert d.min == 10.0 and d.max == 1000.0
    assert d.rep_medians == (10.0, 20.0)
    assert d.p99 == pytest.approx(quantile(sorted(samples), 0.99))
    assert d.to_dict()["rep_medians"] == [10.0, 20.0]


def test_aggregate_add_and_merge():
    agg = new_agg()
    for ns in (300, 100, 200):
        add(agg, ns)
    a = Aggregate.of(agg)
    assert (a.count, a.sum_ns, a.min_ns, a.max_ns) == (3, 600, 100, 300)
    assert a.mean_ns == 200
    assert Aggregate.of(new_agg()) == Aggregate()  # empty: min reads 0, not a sentinel
    b = a.merge(Aggregate(1, 50, 50, 50))
    assert (b.count, b.sum_ns, b.min_ns, b.max_ns) == (4, 650, 50, 300)
    assert a.merge(Aggregate()) is a


def test_metrics_summary_merges_vcpus_and_names_rows():
    m = Metrics()
    v0, v1 = m.for_vcpu(0), m.for_vcpu(1)
    assert m.for_vcpu(0) is v0
    for v, n in ((v0, 3), (v1, 2)):
        for i in range(n):
            add(v.kvm_run.setdefault(2, new_agg()), 1000 + i)  # 2 = KVM_EXIT_IO
            add(v.vmm.setdefault(2, new_agg()), 100 + i)
            add(v.hypercalls[Hypercall.SEND], 50)
        v.errors[Hypercall.SEND] += 1
    add(v1.kvm_run.setdefault(INTERRUPTED, new_agg()), 7)
    add(v1.hypercalls[OUT_OF_RANGE], 9)
    s = m.summary()
    io = s.exit("IO")
    assert io.kvm_run.count == 5 and io.vmm.count == 5 and io.kvm_run.min_ns == 1000 and io.kvm_run.max_ns == 1002
    assert s.exit("INTERRUPTED").kvm_run.count == 1
    send = s.hypercall("SEND")
    assert send.time.count == 5 and send.errors == 2
    assert s.hypercall(f"nr>={OUT_OF_RANGE}").time.count == 1
    assert s.hypercall("NULL") is None  # never called: no row
    assert s.total_kvm_run.count == 6
    d = s.to_dict()
    assert d["hypercalls"]["SEND"] == {"count": 5, "errors": 2, "handler": send.time.to_dict()}
    table = s.format()
    assert any(line.split()[:3] == ["SEND", "5", "2"] for line in table.splitlines())


def test_metrics_samples_only_when_asked():
    assert Metrics().for_vcpu(0).samples_vmm is None
    m = Metrics(keep_samples=True)
    v = m.for_vcpu(0)
    v.samples_kvm_run.append(5)
    v.samples_vmm.append(1)
    assert m.samples() == ([5], [1])


def test_registry_names_are_unique_and_declare_features():
    assert len(BY_NAME) == len(CLASSES)
    assert BY_NAME["as-switch"].features & Feature.ADDRESS_SPACES
    assert BY_NAME["notify-rtt"].vcpus == 2


def test_select_by_name_prefix_and_rejects_unknown():
    assert [c.name for c in select(["send"])] == ["send-0", "send-64", "send-4k", "send-64k", "send-1m"]
    assert [c.name for c in select(["null,base-c-exit"])] == ["null", "base-c-exit"]
    with pytest.raises(BenchError, match="no benchmark class 'nope'"):
        select(["nope"])


def _result(name: str, *samples: float) -> Result:
    return Result(BY_NAME[name], Distribution.of(list(samples)), list(samples))


def test_address_space_rows_are_ratios_to_null_and_the_fault_is_split():
    results = {
        r.cls.name: r
        for r in (
            _result("null", 10, 10, 10),
            _result("base-c-exit", 8, 8, 8),
            _result("as-switch", 14, 15, 16),
            _result("as-map-512", 60, 60, 60),
            _result("as-fault", 100, 100, 100),
            _result("as-fault-vmm", 20, 20, 20),
            _result("tsc-window", 2, 2, 2),
        )
    }
    apply_ratios(results)
    assert results["null"].null_ratio == 1.0 and results["as-switch"].null_ratio == 1.5
    assert results["as-switch"].ratio == 15 / 8
    assert results["tsc-window"].null_ratio is None and results["base-c-exit"].null_ratio is None
    met = {t.what: t.met for t in targets(list(results.values()))}
    assert met["address-space switch / null hypercall"] is True  # 1.5 <= 1.5
    assert met["page fault served (CPL3, end to end) / null hypercall"] is False  # 10x
    assert met["map of 512 pages in one batch / null hypercall"] is False  # 6x
    split = fault_split(list(results.values()))
    assert "end to end 100 ns" in split and "(PAGE_FAULT alone) 20 ns (20%), 2.00x null" in split
    assert split.endswith(" 80 ns")
    results["as-syscall"] = _result("as-syscall", 50, 50, 50)
    assert fault_split(list(results.values())).endswith(" 80 ns (a CPL3 system call round trip alone: 50 ns)")
    del results["as-fault-vmm"]
    assert fault_split(list(results.values())) is None
